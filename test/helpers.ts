import * as tf from '@tensorflow/tfjs-core';
import { expect, it } from 'vitest';
import { InputError } from '../src/errors.js';
import { useBackend } from '../src/engine/backend.js';
import type { Matrix } from './oracle.js';

export const BACKENDS_UNDER_TEST = ['cpu', 'wasm'] as const;

export async function onBackend(name: string): Promise<void> {
  await useBackend(name);
}

export function toMatrix(t: tf.Tensor): Matrix {
  return t.arraySync() as Matrix;
}

/**
 * A test that needs an optional system package: it runs where the package is present, is skipped with
 * the reason where it is absent, and fails where SNNL_REQUIRE_ALL=1 (CI installs everything).
 */
export function needs(available: boolean, reason: string) {
  return (name: string, fn: () => unknown, timeout?: number) => {
    if (available) return it(name, fn, timeout);
    if (process.env['SNNL_REQUIRE_ALL'] === '1') {
      return it(name, () => {
        throw new Error(`${reason} (SNNL_REQUIRE_ALL=1 makes this a failure)`);
      });
    }
    return it.skipIf(true)(`${name} [skipped: ${reason}]`, fn);
  };
}

/** Runs `f`, expects it to throw an InputError, and returns the message. */
export function inputErrorMessage(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return (e as Error).message;
  }
  throw new Error('expected an InputError');
}
