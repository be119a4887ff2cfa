/**
 * What the kernel tests of the wasm and native backends share: running the same computation on two
 * backends, comparing outputs, and the convolution and pooling cases both check.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { onBackend } from './helpers.js';

/** Runs `f` on a backend with the same inputs (plain arrays) and returns its outputs as plain arrays. */
export async function valuesOn(backend: string, f: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await onBackend(backend);
  return tf.tidy(() => {
    const out = f();
    return (Array.isArray(out) ? out : [out]).map((t) => t.dataSync() as Float32Array);
  });
}

/** Largest difference relative to the largest expected magnitude; NaN and infinities must match exactly. */
export function maxRelativeDifference(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let scale = 1e-6;
  let worst = 0;
  b.forEach((v) => Number.isFinite(v) && (scale = Math.max(scale, Math.abs(v))));
  a.forEach((v, k) => {
    const e = b[k]!;
    if (!Number.isFinite(e) || !Number.isFinite(v)) {
      if (!Object.is(v, e) && !(Number.isNaN(v) && Number.isNaN(e))) worst = Infinity;
      return;
    }
    worst = Math.max(worst, Math.abs(v - e));
  });
  return worst / scale;
}

export type ConvPad =
  'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

/** [input NHWC, filter HWIO, stride, pad]: the REFERENCE CNN's layers, odd sizes, strides 1-3, every padding. */
export const CONV_CASES: Array<[number[], number[], number | [number, number], ConvPad]> = [
  [[2, 28, 28, 1], [8, 8, 1, 4], 2, 1],
  [[2, 12, 12, 4], [6, 6, 4, 3], 2, 1],
  [[3, 32, 32, 3], [8, 8, 3, 2], 2, 1],
  [[1, 9, 11, 2], [3, 3, 2, 5], 1, 'same'],
  [[2, 10, 7, 3], [3, 2, 3, 4], 2, 'same'],
  [[2, 13, 13, 2], [5, 5, 2, 3], 3, 'valid'],
  [[1, 8, 8, 1], [1, 1, 1, 2], 2, 'valid'],
  [[2, 7, 9, 2], [3, 3, 2, 2], [2, 1], 'same'],
  [
    [1, 11, 10, 3],
    [4, 3, 3, 2],
    2,
    [
      [0, 0],
      [2, 1],
      [0, 2],
      [0, 0],
    ],
  ],
  [[1, 6, 6, 2], [2, 2, 2, 2], 1, 3],
];

/** [input NHWC, filter, stride, pad] for max pooling. */
export const MAX_POOL_CASES: Array<[number[], number, number, 'same' | 'valid' | number]> = [
  [[2, 12, 12, 3], 2, 2, 'valid'],
  [[2, 13, 11, 4], 3, 2, 'same'],
  [[1, 9, 9, 2], 3, 1, 'valid'],
  [[3, 8, 10, 5], 3, 2, 1],
];
