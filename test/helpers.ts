import * as tf from '@tensorflow/tfjs-core';
import { useBackend } from '../src/engine/backend.js';
import type { Matrix } from './oracle.js';

export const BACKENDS_UNDER_TEST = ['cpu', 'wasm'] as const;

export async function onBackend(name: string): Promise<void> {
  await useBackend(name);
}

export function toMatrix(t: tf.Tensor): Matrix {
  return t.arraySync() as Matrix;
}
