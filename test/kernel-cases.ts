/**
 * What the kernel tests of the wasm and native backends share: running the same computation on two
 * backends, comparing outputs, and the convolution and pooling cases both check.
 */
import * as tf from '@tensorflow/tfjs-core';
import { expect } from 'vitest';
import { onBackend } from './helpers.js';
import { seeded } from './oracle.js';
import { fusedKernelsAvailable } from '../src/loss/fused.js';
import { PRESETS, getPreset } from '../src/loss/presets.js';
import { snnl } from '../src/loss/snnl.js';

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

/**
 * Asserts that two arrays hold the same values (Object.is: NaN equals NaN, 0 and -0 differ), reporting
 * the number of mismatches and the first: a failing toEqual on arrays this long prints for minutes.
 */
export function expectSameValues(got: ArrayLike<number>, expected: ArrayLike<number>): void {
  expect(got.length).toBe(expected.length);
  let mismatches = 0;
  let first = -1;
  for (let i = 0; i < got.length; i++) {
    if (!Object.is(got[i], expected[i])) {
      mismatches++;
      if (first < 0) first = i;
    }
  }
  const where = first < 0 ? '' : `, first at ${first}: ${got[first]} instead of ${expected[first]}`;
  expect(`${mismatches} mismatches${where}`).toBe('0 mismatches');
}

export type ConvPad =
  'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

/**
 * [input NHWC, filter HWIO, stride, pad]: the REFERENCE CNN's layers, odd sizes, strides 1-3, every
 * padding, channel counts in and out of fours.
 */
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
  // channels in fours and a tail of two; enough images for the wasm helper thread to take half
  [[2, 14, 14, 6], [6, 6, 6, 5], 2, 1],
  [[4, 20, 20, 8], [6, 6, 8, 4], 2, 1],
];

/** [input NHWC, filter, stride, pad] for max pooling. */
export const MAX_POOL_CASES: Array<[number[], number, number, 'same' | 'valid' | number]> = [
  [[2, 12, 12, 3], 2, 2, 'valid'],
  [[2, 13, 11, 4], 3, 2, 'same'],
  [[1, 9, 9, 2], 3, 1, 'valid'],
  [[3, 8, 10, 5], 3, 2, 1],
];

/**
 * The fused SNNL kernels of `backend` against the composed loss on cpu: every preset x distance x
 * temperature, with a singleton class, a duplicate and a zero row; and activations large enough that
 * every partner's term underflows against the row maximum. `test` is vitest's, or a skipping one.
 */
export function fusedSnnlCases(backend: string, test: (name: string, body: () => Promise<void>) => void): void {
  const random = seeded(61);
  const values = (n: number) => Array.from({ length: n }, () => random() * 2 - 1);
  // The zero row's gradient is scaled by 1 / 1e-12 (the norm floor): compared on its own, or it would
  // hide every other row's error in one comparison.
  const agree = async (run: () => tf.Tensor[], tolerance: number, width: number, zeroRow = -1) => {
    const expected = await valuesOn('cpu', run);
    const got = await valuesOn(backend, run);
    const split = (a: Float32Array) =>
      a.length <= width || zeroRow < 0
        ? [a]
        : [
            Float32Array.from([...a.subarray(0, zeroRow * width), ...a.subarray((zeroRow + 1) * width)]),
            a.subarray(zeroRow * width, (zeroRow + 1) * width),
          ];
    got.forEach((g, k) => {
      const want = split(expected[k]!);
      split(g).forEach((part, p) =>
        expect(maxRelativeDifference(part, want[p]!), `output ${k} part ${p}`).toBeLessThan(tolerance),
      );
    });
  };
  test('the backend has both fused kernels, so snnl() uses them', async () => {
    await onBackend(backend);
    expect(fusedKernelsAvailable()).toBe(true);
  });
  const pairs = PRESETS.flatMap((preset) => getPreset(preset).distances.map((distance) => ({ preset, distance })));
  for (const { preset, distance } of pairs) {
    for (const temperature of [0.3, 2, 50]) {
      test(`${preset} ${distance} T=${temperature}: loss and gradient`, async () => {
        const b = 40;
        const xv = values(b * 23).map((v) => v * 3);
        // Classes of sizes 1 (no partner), 2 and larger; a duplicate row and a zero row.
        const labels = Int32Array.from({ length: b }, (_, i) => (i === 0 ? 9 : i < 3 ? 8 : i % 4));
        xv.splice(23, 23, ...xv.slice(46, 69));
        xv.fill(0, 5 * 23, 6 * 23);
        await agree(
          () => {
            const x = tf.tensor2d(xv, [b, 23]);
            const options = { preset, distance, temperature };
            const perRow = snnl(x, labels, { ...options, reduction: 'none' });
            return [snnl(x, labels, options), perRow, tf.grad((f: tf.Tensor) => snnl(f, labels, options))(x)];
          },
          1e-5,
          23,
          5,
        );
      });
    }
  }

  test('agrees where far pairs give subnormal kernel terms (flushed to zero before the product)', async () => {
    const random = seeded(46);
    // Two tight clusters 9.5 apart, each holding every class: between them exp(-D / T) ~ exp(-90), subnormal.
    const b = 32;
    const xv = Array.from({ length: b * 4 }, (_, k) => (random() - 0.5) * 0.5 + (Math.floor(k / 4) < b / 2 ? 0 : 9.5));
    const labels = Int32Array.from({ length: b }, (_, i) => i % 4);
    // Coordinates near 9.5 in float32: wasm differs by the same 1.0e-5 with or without the flush (measured).
    await agree(
      () => {
        const x = tf.tensor2d(xv, [b, 4]);
        const options = { distance: 'squared-euclidean' as const, temperature: 1 };
        return [snnl(x, labels, options), tf.grad((f: tf.Tensor) => snnl(f, labels, options))(x)];
      },
      3e-5,
      4,
    );
  });

  // Rows as wide as a convolution's output: the native kernels split the products over runs of columns, one
  // per thread (odd widths: runs of unequal length); ReLU-like rows, a quarter of them scaled up.
  for (const distance of ['squared-euclidean', 'euclidean', 'cosine'] as const) {
    test(`wide ReLU rows (${distance}): loss and gradient`, async () => {
      const b = 48;
      const d = 777;
      const xv = values(b * d).map((v, k) => Math.max(0, v) * (Math.floor(k / d) % 4 === 0 ? 30 : 1));
      const labels = Int32Array.from({ length: b }, (_, i) => i % 6);
      const options = { distance, temperature: distance === 'cosine' ? 0.5 : 50 };
      await agree(
        () => {
          const x = tf.tensor2d(xv, [b, d]);
          return [snnl(x, labels, options), tf.grad((f: tf.Tensor) => snnl(f, labels, options))(x)];
        },
        1e-4,
        d,
      );
    });
  }

  test('large unnormalized activations (partners far beyond the row maximum) stay finite and agree', async () => {
    const b = 64;
    const d = 300;
    const xv = values(b * d).map((v) => v * 40);
    const labels = Int32Array.from({ length: b }, (_, i) => i % 5);
    await agree(
      () => {
        const x = tf.tensor2d(xv, [b, d]);
        const loss = snnl(x, labels, { temperature: 1 });
        return [loss, tf.grad((f: tf.Tensor) => snnl(f, labels, { temperature: 1 }))(x)];
      },
      1e-4,
      d,
    );
    await onBackend(backend);
    const loss = tf.tidy(() => snnl(tf.tensor2d(xv, [b, d]), labels, { temperature: 1 }).dataSync()[0]!);
    expect(Number.isFinite(loss) && loss > 100).toBe(true);
  });
}
