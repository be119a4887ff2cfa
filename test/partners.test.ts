/**
 * Batches with partners: the reference-set (memory bank) form of SNNL against a float64 oracle by direct
 * differences, its gradient by finite differences, the class-balanced sampler, the bank itself, and
 * trainWithSnnl with a bank.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { snnl, snnlWithReference } from '../src/loss/index.js';
import { balancedBatches, balancedIndices, MemoryBank } from '../src/training/samplers.js';
import { trainWithSnnl } from '../src/training/with-snnl.js';
import {
  finiteDifferenceGradient,
  matrixRelativeError,
  normalMatrix,
  pairDistance,
  relativeError,
  seeded,
  type Matrix,
  type OracleDistance,
} from './oracle.js';
import { inputErrorMessage as message, onBackend } from './helpers.js';

beforeAll(() => onBackend('cpu'));

/** The reference form in float64: each batch row against the other batch rows and every reference row. */
function oracle(h: Matrix, y: number[], ref: Matrix, refY: number[], t: number, distance: OracleDistance): number {
  const all = [...h, ...ref];
  const labels = [...y, ...refY];
  let total = 0;
  let counted = 0;
  h.forEach((row, i) => {
    let same = 0;
    let sum = 0;
    all.forEach((other, j) => {
      if (j === i) return;
      const w = Math.exp(-pairDistance(row, other, distance) / t);
      sum += w;
      if (labels[j] === y[i]) same += w;
    });
    if (!labels.some((l, j) => j !== i && l === y[i])) return;
    total += -Math.log(same / sum);
    counted++;
  });
  return counted === 0 ? 0 : total / counted;
}

describe('SNNL against a reference set', () => {
  const r = seeded(8);
  const h = normalMatrix(10, 5, r);
  const y = [0, 1, 2, 3, 4, 5, 0, 1, 6, 7]; // rows 2-5, 8, 9 have no partner in the batch
  const ref = normalMatrix(16, 5, r);
  const refY = Array.from({ length: 16 }, (_, i) => i % 8);

  it.each(['squared-euclidean', 'euclidean', 'cosine'] as const)('matches the float64 oracle (%s)', (distance) => {
    const t = distance === 'cosine' ? 0.3 : 2;
    const got = snnlWithReference(tf.tensor2d(h), y, tf.tensor2d(ref), refY, { temperature: t, distance });
    expect(relativeError(got.dataSync()[0]!, oracle(h, y, ref, refY, t, distance))).toBeLessThan(1e-5);
  });

  it('with no reference set is snnl() (stable form); rows without partners anywhere are left out', () => {
    const alone = snnlWithReference(tf.tensor2d(h), y, null, null, { temperature: 2 }).dataSync()[0]!;
    expect(relativeError(alone, snnl(tf.tensor2d(h), y, { temperature: 2 }).dataSync()[0]!)).toBeLessThan(1e-6);
    expect(relativeError(alone, oracle(h, y, [], [], 2, 'squared-euclidean'))).toBeLessThan(1e-5);
  });

  it('its gradient (through the batch only) matches finite differences of the oracle', () => {
    const reference = tf.tensor2d(ref);
    const grad = tf.grad((x: tf.Tensor) => snnlWithReference(x as tf.Tensor2D, y, reference, refY, { temperature: 2 }));
    const got = grad(tf.tensor2d(h)).arraySync() as Matrix;
    const want = finiteDifferenceGradient((x) => oracle(x, y, ref, refY, 2, 'squared-euclidean'), h);
    expect(matrixRelativeError(got, want)).toBeLessThan(1e-3);
    expect(got.flat().every(Number.isFinite)).toBe(true);
  });

  it('names the argument in its errors', () => {
    expect(message(() => snnlWithReference(tf.tensor2d(h), y, tf.tensor2d([[1, 2]]), [0]))).toBe(
      'reference: has 2 features per row, the batch 5',
    );
    expect(message(() => snnlWithReference(tf.tensor2d(h), y, tf.tensor2d(ref), [0, 1]))).toBe(
      'referenceLabels: has 2 labels for 16 rows',
    );
  });
});

describe('class-balanced batches', () => {
  const labels = Array.from({ length: 1000 }, (_, i) => i % 100);

  it('hold perClass examples of classesPerBatch classes, seeded, every row with a partner', () => {
    const batches = balancedIndices(labels, { classesPerBatch: 16, perClass: 4, seed: 3 })(0);
    expect(batches).toHaveLength(Math.floor(1000 / 64));
    for (const batch of batches) {
      const counts = new Map<number, number>();
      for (const i of batch) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1);
      expect(counts.size).toBe(16);
      for (const c of counts.values()) expect(c).toBe(4);
      expect(new Set(batch).size).toBe(64); // no example twice in a batch
    }
    expect(balancedIndices(labels, { classesPerBatch: 16, perClass: 4, seed: 3 })(0)).toEqual(batches);
    expect(balancedIndices(labels, { classesPerBatch: 16, perClass: 4, seed: 3 })(1)).not.toEqual(batches);
  });

  it('yields tensors for trainWithSnnl and names the argument in its errors', () => {
    const x = tf.zeros([1000, 3]);
    const first = balancedBatches(x, labels, { classesPerBatch: 8, perClass: 2, batches: 2 })(0);
    const items = [...first];
    expect(items).toHaveLength(2);
    expect(items[0]!.x.shape).toEqual([16, 3]);
    items.forEach((b) => b.x.dispose());
    x.dispose();
    expect(message(() => balancedIndices(labels, { classesPerBatch: 101, perClass: 2 }))).toBe(
      'classesPerBatch: is 101, but the labels hold 100 classes',
    );
    expect(message(() => balancedIndices(labels, { classesPerBatch: 4, perClass: 1 }))).toBe(
      'perClass: expected a whole number from 2 (a partner for every row), got 1',
    );
  });
});

describe('the memory bank', () => {
  it('keeps the last size rows and their labels, copies what it is given, and frees them', () => {
    const before = tf.memory().numTensors;
    const bank = new MemoryBank(5);
    const a = tf.tensor2d([[1], [2], [3]]);
    bank.push(a, [1, 2, 3]);
    a.dispose();
    bank.push(
      tf.tidy(() => tf.tensor2d([[4], [5], [6]])),
      [4, 5, 6],
    );
    expect(Array.from(bank.features!.dataSync())).toEqual([2, 3, 4, 5, 6]);
    expect(Array.from(bank.labels)).toEqual([2, 3, 4, 5, 6]);
    expect(message(() => bank.push(tf.zeros([1, 2]), [0]))).toBe('features: have 2 values per row; the bank holds 1');
    bank.dispose();
    // The two tensors made in the test and left undisposed (the failed push's zeros and the tidy result).
    expect(tf.memory().numTensors).toBeLessThanOrEqual(before + 2);
  });
});

describe('trainWithSnnl with a memory bank', () => {
  it('trains on 100 classes with small batches, no leak, and refuses the bounded form', async () => {
    const r = seeded(12);
    const n = 800;
    const y = Array.from({ length: n }, (_, i) => i % 100);
    const x = tf.tensor2d(normalMatrix(n, 8, r).map((row, i) => row.map((v, j) => v + ((y[i]! >> j) & 1) * 2)));
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [8], units: 16, activation: 'tanh', name: 'hidden' }),
        tf.layers.dense({ units: 100, name: 'out' }),
      ],
    });
    const tensors = tf.memory().numTensors;
    const records = await trainWithSnnl(model, { x, y }, { factor: 1, memoryBank: 256, epochs: 2, batchSize: 32 });
    expect(tf.memory().numTensors).toBe(tensors);
    expect(records.every((m) => Number.isFinite(m.train.loss) && m.train.snnl > 0)).toBe(true);
    const refused = await trainWithSnnl(model, { x, y }, { factor: -1, memoryBank: 256 }).then(
      () => 'no error',
      (e: Error) => e.message,
    );
    expect(refused).toMatch(/^memoryBank: works with the stable preset/);
    tf.dispose([x]);
    model.dispose();
  }, 120_000);
});
