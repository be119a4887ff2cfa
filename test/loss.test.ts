import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { snnl, snnlDetails, snnlNaive } from '../src/index.js';
import type { SnnlOptions } from '../src/index.js';
import { BACKENDS_UNDER_TEST, onBackend, toMatrix } from './helpers.js';
import {
  finiteDifferenceGradient,
  matrixRelativeError,
  normalMatrix,
  oracleSnnl,
  relativeError,
  seeded,
  type Matrix,
  type OracleDistance,
  type OraclePreset,
} from './oracle.js';

const COMBINATIONS: Array<[OraclePreset, OracleDistance]> = [
  ['stable', 'squared-euclidean'],
  ['stable', 'euclidean'],
  ['stable', 'cosine'],
  ['cleverhans', 'squared-euclidean'],
  ['cleverhans', 'cosine'],
  ['pt-snnl', 'cosine'],
];

// 14 points, 4 classes, class 3 a singleton (no same-class partner).
const LABELS = [0, 0, 1, 1, 2, 2, 0, 1, 3, 2, 1, 0, 2, 1];

function scalar(t: tf.Tensor): number {
  const v = t.dataSync()[0]!;
  t.dispose();
  return v;
}

function gradOf(loss: (x: tf.Tensor) => tf.Tensor, x: Matrix): Matrix {
  return tf.tidy(() => toMatrix(tf.grad(loss)(tf.tensor2d(x))));
}

for (const backend of BACKENDS_UNDER_TEST) {
  describe(`snnl on the ${backend} backend`, () => {
    beforeAll(() => onBackend(backend));

    describe.each(COMBINATIONS)('preset %s, distance %s', (preset, distance) => {
      for (const temperature of [0.3, 2, 50]) {
        it(`matches the float64 oracle at T = ${temperature}`, () => {
          const x = normalMatrix(LABELS.length, 6, seeded(temperature * 100));
          const expected = oracleSnnl(x, LABELS, temperature, distance, preset);
          const got = snnlDetails(tf.tensor2d(x), LABELS, { preset, distance, temperature });
          expect(relativeError(scalar(got.loss), expected.loss)).toBeLessThan(1e-5);
          expect(got.rowsWithoutPartner).toBe(1);
          expect(got.rowsCounted).toBe(preset === 'stable' ? LABELS.length - 1 : LABELS.length);
        });
      }

      it('has the gradient of central finite differences of the oracle', () => {
        const x = normalMatrix(LABELS.length, 5, seeded(7));
        const options: SnnlOptions = { preset, distance, temperature: 1.5 };
        const got = gradOf((f) => snnl(f, LABELS, options), x);
        const expected = finiteDifferenceGradient((m) => oracleSnnl(m, LABELS, 1.5, distance, preset).loss, x);
        expect(matrixRelativeError(got, expected)).toBeLessThan(1e-4);
      });

      it('has the gradient of autodiff through the naive formula', () => {
        const x = normalMatrix(LABELS.length, 5, seeded(8));
        const options: SnnlOptions = { preset, distance, temperature: 0.8 };
        const closed = gradOf((f) => snnl(f, LABELS, options), x);
        const naive = gradOf((f) => snnlNaive(f, LABELS, options), x);
        expect(matrixRelativeError(closed, naive)).toBeLessThan(1e-4);
      });

      it('gives the same loss and gradient in row blocks', () => {
        const x = normalMatrix(LABELS.length, 4, seeded(9));
        const whole: SnnlOptions = { preset, distance, temperature: 1 };
        for (const blockSize of [1, 3, 5, 13]) {
          const blocked = { ...whole, blockSize };
          expect(scalar(snnl(x, LABELS, blocked))).toBeCloseTo(scalar(snnl(x, LABELS, whole)), 5);
          const g1 = gradOf((f) => snnl(f, LABELS, whole), x);
          const g2 = gradOf((f) => snnl(f, LABELS, blocked), x);
          expect(matrixRelativeError(g2, g1)).toBeLessThan(1e-5);
        }
      });

      it('leaks no tensor through forward and backward', () => {
        const x = tf.tensor2d(normalMatrix(LABELS.length, 4, seeded(10)));
        const before = tf.memory().numTensors;
        for (const blockSize of [undefined, 4]) {
          const { value, grads } = tf.valueAndGrads(
            (f: tf.Tensor) => snnl(f, LABELS, { preset, distance, blockSize }) as tf.Scalar,
          )([x]);
          tf.dispose([value, grads]);
        }
        expect(tf.memory().numTensors).toBe(before);
        x.dispose();
      });
    });

    it('reduces by mean, sum or not at all, with per-example values of the oracle', () => {
      const x = normalMatrix(LABELS.length, 3, seeded(11));
      const expected = oracleSnnl(x, LABELS, 1, 'squared-euclidean', 'stable');
      const none = snnl(x, LABELS, { reduction: 'none' });
      expect(none.shape).toEqual([LABELS.length]);
      const rows = Array.from(none.dataSync());
      none.dispose();
      rows.forEach((v, i) => expect(v).toBeCloseTo(expected.perRow[i]!, 4));
      const sum = expected.perRow.reduce((a, v) => a + v, 0);
      expect(scalar(snnl(x, LABELS, { reduction: 'sum' }))).toBeCloseTo(sum, 3);
      expect(scalar(snnl(x, LABELS, { reduction: 'mean' }))).toBeCloseTo(sum / (LABELS.length - 1), 4);
    });

    it('differentiates the per-example values (reduction none)', () => {
      const x = normalMatrix(8, 3, seeded(12));
      const y = [0, 0, 1, 1, 2, 2, 1, 0];
      const weights = [1, -2, 0.5, 3, 0, 1, 2, -1];
      const got = gradOf((f) => tf.sum(tf.mul(snnl(f, y, { reduction: 'none' }), weights)), x);
      const expected = finiteDifferenceGradient(
        (m) => oracleSnnl(m, y, 1, 'squared-euclidean', 'stable').perRow.reduce((a, v, i) => a + v * weights[i]!, 0),
        x,
      );
      expect(matrixRelativeError(got, expected)).toBeLessThan(1e-4);
    });

    it('accepts features of any rank, flattened per example, and labels as an int32 tensor', () => {
      const x = normalMatrix(6, 12, seeded(13));
      const y = [0, 1, 0, 1, 2, 2];
      const flat = scalar(snnl(x, y));
      const image = tf.tensor4d(x.flat(), [6, 2, 3, 2]);
      expect(scalar(snnl(image, tf.tensor1d(y, 'int32')))).toBeCloseTo(flat, 5);
      const g = tf.grad((f) => snnl(f, y))(image);
      expect(g.shape).toEqual([6, 2, 3, 2]);
      tf.dispose([image, g]);
    });

    it('stays finite for huge distances (d = 3136, unnormalized activations) where exp(-D/T) underflows', () => {
      const random = seeded(14);
      const b = 24;
      const y = Array.from({ length: b }, (_, i) => i % 4);
      // ReLU-like activations of scale 10: squared distances near 3e5, exp(-D) is 0 in any float.
      const x = normalMatrix(b, 3136, random, 10).map((row) => row.map((v) => Math.max(0, v)));
      const expected = oracleSnnl(x, y, 1, 'squared-euclidean', 'stable');
      const got = scalar(snnl(x, y, { temperature: 1 }));
      expect(Number.isFinite(got)).toBe(true);
      expect(expected.loss).toBeGreaterThan(100);
      expect(relativeError(got, expected.loss)).toBeLessThan(1e-4);
      const g = tf.grad((f) => snnl(f, y, { temperature: 1 }))(tf.tensor2d(x));
      expect(tf.all(tf.isFinite(g)).dataSync()[0]).toBe(1);
      g.dispose();
      // The naive formula has no such luck: every exp(-D/T) is 0 and its loss is log(0)-ish.
      const naive = scalar(snnlNaive(tf.tensor2d(x), y, { preset: 'cleverhans', temperature: 1 }));
      expect(naive).toBeCloseTo(-Math.log(1e-5), 3);
    });

    it('gives a finite value and a zero gradient when no row has a partner', () => {
      const x = normalMatrix(4, 3, seeded(15));
      const y = [0, 1, 2, 3];
      const details = snnlDetails(x, y);
      expect(scalar(details.loss)).toBe(0);
      expect(details.rowsWithoutPartner).toBe(4);
      const g = gradOf((f) => snnl(f, y), x);
      expect(g.flat().every((v) => v === 0)).toBe(true);
    });

    it('stays finite for duplicate points, zero vectors or extreme temperatures', () => {
      const x = [
        [0, 0, 0],
        [0, 0, 0],
        [1, 2, 3],
        [1, 2, 3],
        [1e4, -1e4, 5],
        [3, 3, 3],
      ];
      const y = [0, 1, 0, 1, 0, 1];
      for (const distance of ['squared-euclidean', 'euclidean', 'cosine'] as const) {
        for (const temperature of [1e-8, 1, 1e8]) {
          const options: SnnlOptions = { distance, temperature };
          expect(Number.isFinite(scalar(snnl(x, y, options))), `${distance} T=${temperature}`).toBe(true);
          const g = gradOf((f) => snnl(f, y, options), x);
          expect(
            g.flat().every((v) => Number.isFinite(v)),
            `${distance} T=${temperature}`,
          ).toBe(true);
        }
      }
    });

    it('stays finite for features up to the float32 limit and refuses larger ones, naming the bound', () => {
      const y = [0, 1, 0, 1, 0, 1, 0, 1];
      const random = seeded(5);
      const d = 4;
      const limit = Math.sqrt(3.4028234663852886e38 / (16 * d));
      const at = (scale: number) =>
        Array.from({ length: 8 }, () => Array.from({ length: d }, () => scale * (random() * 2 - 1)));
      for (const distance of ['squared-euclidean', 'euclidean', 'cosine'] as const) {
        for (let trial = 0; trial < 20; trial++) {
          const x = at(limit * 0.99);
          const options: SnnlOptions = { distance, temperature: 1e30 };
          expect(Number.isFinite(scalar(snnl(x, y, options))), distance).toBe(true);
          const g = gradOf((f) => snnl(f, y, options), x);
          expect(
            g.flat().every((v) => Number.isFinite(v)),
            distance,
          ).toBe(true);
        }
        expect(() => snnl(at(1e19), y, { distance })).toThrow(
          /^features: values reach .*e\+1[89]: squared distances between rows would overflow float32 at 4 features/,
        );
      }
    });
  });
}

describe('large batches', () => {
  beforeAll(() => onBackend('wasm'));

  it('runs b = 8192, d = 512 in row blocks, equal to the one-block result on a slice', () => {
    const b = 8192;
    const x = tf.randomNormal([b, 512], 0, 1, 'float32', 3);
    const y = tf.randomUniform([b], 0, 10, 'int32', 4);
    const { value, grads } = tf.valueAndGrads(
      (f: tf.Tensor) => snnl(f, y, { blockSize: 1024, temperature: 512 }) as tf.Scalar,
    )([x]);
    expect(Number.isFinite(value.dataSync()[0]!)).toBe(true);
    expect(grads[0]!.shape).toEqual([b, 512]);
    expect(tf.all(tf.isFinite(grads[0]!)).dataSync()[0]).toBe(1);
    // Blocked and whole agree on a batch small enough for one block.
    const xs = tf.slice(x, [0, 0], [1500, -1]);
    const ys = tf.slice(y, [0], [1500]);
    const whole = snnl(xs, ys, { temperature: 512 }).dataSync()[0]!;
    const blocked = snnl(xs, ys, { temperature: 512, blockSize: 256 }).dataSync()[0]!;
    expect(relativeError(blocked, whole)).toBeLessThan(1e-5);
    tf.dispose([x, y, value, grads, xs, ys]);
  });
});
