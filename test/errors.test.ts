import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { InputError, snnl } from '../src/index.js';
import type { SnnlOptions } from '../src/index.js';
import { onBackend } from './helpers.js';

const x = [
  [0, 1],
  [1, 0],
  [2, 2],
  [3, 1],
];
const y = [0, 0, 1, 1];

function error(f: () => unknown): InputError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error('expected an InputError');
}

describe('snnl rejects bad input with an error naming it', () => {
  beforeAll(() => onBackend('cpu'));

  it('mismatched batch sizes', () => {
    expect(error(() => snnl(x, [0, 1, 0])).message).toBe('labels: expected 4 labels (one per row of features), got 3');
  });

  it('a batch of fewer than 2 examples', () => {
    expect(error(() => snnl([[1, 2]], [0])).message).toMatch(
      /features: expected a batch of at least 2 examples, got 1/,
    );
  });

  it('features without a batch axis', () => {
    expect(error(() => snnl(tf.tensor1d([1, 2, 3]), [0, 0, 1])).subject).toBe('features');
  });

  it('labels that are not whole numbers', () => {
    expect(error(() => snnl(x, [0, 0.5, 1, 1])).message).toMatch(
      /labels: label 1 is 0.5; labels must be whole numbers/,
    );
    expect(error(() => snnl(x, tf.tensor1d([0, 0, 1, 1.25]))).message).toMatch(/label 3 is 1.25/);
    expect(error(() => snnl(x, tf.tensor2d([[0], [0], [1], [1]]))).message).toMatch(/expected a 1-D tensor/);
    expect(error(() => snnl(x, 'abc' as unknown as number[])).subject).toBe('labels');
  });

  it('non-finite features, naming the row', () => {
    const bad = x.map((r) => [...r]);
    bad[2]![1] = NaN;
    expect(error(() => snnl(bad, y)).message).toBe(
      'features: row 2 holds a NaN or infinite value; features must be finite',
    );
    bad[2]![1] = Infinity;
    expect(error(() => snnl(bad, y)).message).toMatch(/row 2/);
  });

  it.each([0, -1, NaN, Infinity, '2' as unknown as number])('temperature %s', (temperature) => {
    expect(error(() => snnl(x, y, { temperature })).message).toMatch(/^temperature: expected a finite number above 0/);
  });

  it('unknown distance, preset or reduction, listing the valid ones', () => {
    expect(error(() => snnl(x, y, { distance: 'manhattan' } as unknown as SnnlOptions)).message).toBe(
      'distance: unknown value "manhattan"; expected one of squared-euclidean, euclidean, cosine',
    );
    expect(error(() => snnl(x, y, { preset: 'keras' } as unknown as SnnlOptions)).message).toMatch(
      /preset: unknown value "keras"; expected one of stable, cleverhans, pt-snnl/,
    );
    expect(error(() => snnl(x, y, { reduction: 'max' } as unknown as SnnlOptions)).subject).toBe('reduction');
  });

  it('a distance the preset does not have', () => {
    expect(error(() => snnl(x, y, { preset: 'pt-snnl', distance: 'squared-euclidean' })).message).toBe(
      'distance: the pt-snnl preset supports cosine distance only, not squared-euclidean',
    );
    expect(error(() => snnl(x, y, { preset: 'cleverhans', distance: 'euclidean' })).message).toMatch(
      /cleverhans preset supports squared-euclidean and cosine/,
    );
  });

  it.each([0, -3, 2.5])('block size %s', (blockSize) => {
    expect(error(() => snnl(x, y, { blockSize })).subject).toBe('blockSize');
  });

  it('leaks no tensor when it throws', () => {
    const before = tf.memory().numTensors;
    error(() => snnl(x, y, { temperature: -1 }));
    error(() =>
      snnl(
        [
          [NaN, 1],
          [1, 2],
        ],
        [0, 0],
      ),
    );
    expect(tf.memory().numTensors).toBe(before);
  });
});
