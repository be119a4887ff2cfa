import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onBackend } from './helpers.js';
import {
  CONV_CASES,
  MAX_POOL_CASES,
  expectSameValues,
  fusedSnnlCases,
  maxRelativeDifference,
  valuesOn as on,
} from './kernel-cases.js';
import { seeded } from './oracle.js';
import { snnl } from '../src/loss/snnl.js';
import { collapsePermutation } from '../src/engine/wasm/layout.js';
import { setBackpropFilterStrategy, type BackpropFilterStrategy } from '../src/engine/wasm/conv-backprop-filter.js';
import { setBackpropInputStrategy, type BackpropInputStrategy } from '../src/engine/wasm/conv-backprop-input.js';
import { setSplitThreshold, setWasmRuntimeEnabled, SPLIT_AT } from '../src/engine/wasm/simd/runtime.js';

// Jobs from 4096 elements are split with the helper thread (the default threshold is larger than these
// cases), so that every split path runs.
beforeAll(() => setSplitThreshold(1 << 12));
afterAll(() => setSplitThreshold(SPLIT_AT));

describe('wasm BatchMatMul with transposed operands agrees with cpu', () => {
  const random = seeded(41);
  const values = (n: number) => Array.from({ length: n }, () => random() * 2 - 1);
  const shapes: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[4, 33, 17], [4, 17, 9], false, false],
    [[4, 17, 33], [4, 9, 17], true, true],
    [[3, 17, 33], [3, 17, 9], true, false],
    [[2, 1, 6], [2, 5, 6], false, true],
    [[64, 129], [64, 65], true, false],
    // a b^T with b much larger than a: computed as (b a^T)^T.
    [[16, 50], [120, 50], false, true],
    [[3, 16, 40], [3, 64, 40], false, true],
  ];
  it.each(shapes)('a %j b %j transposeA %s transposeB %s, with gradients', async (aShape, bShape, ta, tb) => {
    const aValues = values(aShape.reduce((p, n) => p * n, 1));
    const bValues = values(bShape.reduce((p, n) => p * n, 1));
    const run = () => {
      const a = tf.tensor(aValues, aShape);
      const b = tf.tensor(bValues, bShape);
      const product = tf.matMul(a, b, ta, tb);
      const again = seeded(product.size);
      const weights = tf.tensor(Array.from({ length: product.size }, again), product.shape);
      const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(tf.matMul(p, q, ta, tb), weights)))([
        a,
        b,
      ]);
      return [product, ga!, gb!];
    };
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!)).toBeLessThan(1e-5));
  });

  it('broadcasts a batch of 1 against a batch of 3 (forward; tfjs-core has no gradient for it)', async () => {
    const aValues = values(17 * 33);
    const bValues = values(3 * 17 * 9);
    const run = () => tf.matMul(tf.tensor(aValues, [1, 17, 33]), tf.tensor(bValues, [3, 17, 9]), true, false);
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    expect(maxRelativeDifference(got[0]!, expected[0]!)).toBeLessThan(1e-5);
  });

  it('leaks no tensor', async () => {
    await onBackend('wasm');
    const a = tf.randomNormal([8, 6]);
    const before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    tf.matMul(a, a, true, false).dispose();
    tf.matMul(a, a, false, true).dispose();
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytes);
    a.dispose();
  });
});

describe('wasm BatchMatMul of a fresh large right operand, computed as (b^T a^T)^T, agrees with cpu', () => {
  it('on first use (swapped) and on the next (packed directly), with gradients', async () => {
    const random = seeded(43);
    const aValues = Array.from({ length: 4 * 2048 }, () => random() * 2 - 1);
    const bValues = Array.from({ length: 2048 * 1024 }, () => random() * 2 - 1);
    const run = () => {
      const a = tf.tensor(aValues, [4, 2048]);
      const b = tf.tensor(bValues, [2048, 1024]);
      const first = tf.matMul(a, b);
      const second = tf.matMul(a, b);
      const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.sum(tf.square(tf.matMul(p, q))))([a, b]);
      return [first, second, ga!, gb!];
    };
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!)).toBeLessThan(1e-5));
  });

  it('leaks no tensor', async () => {
    await onBackend('wasm');
    const a = tf.randomNormal([4, 2048]);
    const b = tf.randomNormal([2048, 1024]);
    const before = tf.memory();
    tf.matMul(a, b).dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
    tf.dispose([a, b]);
  });
});

describe('wasm Sum over leading axes and Identity agree with cpu', () => {
  const random = seeded(44);
  const cases: Array<[number[], number | number[], boolean]> = [
    [[6, 5, 4, 3], [0, 1, 2], false],
    [[6, 5, 4, 3], [0, 1, 2], true],
    [[7, 9], 0, false],
    [[4, 3, 5], [-3, 1], true],
    [[200, 7, 12], 0, false], // 4 chunks of 64 rows, split with the helper
    [[130, 5, 6], [0, 1], true], // four columns by SIMD, two in JavaScript
    [[4, 3, 5], [1, 2], false], // not leading: the stock kernel
    [[4, 3, 5], [0, 1, 2], false], // every axis: the stock kernel
  ];
  it.each(cases)('x %j axes %j keepDims %s', async (shape, axes, keepDims) => {
    const values = Array.from({ length: shape.reduce((p, n) => p * n, 1) }, () => random() * 2 - 1);
    const run = () => [tf.sum(tf.tensor(values, shape), axes, keepDims)];
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    expect(maxRelativeDifference(got[0]!, expected[0]!)).toBeLessThan(1e-6);
    await onBackend('wasm');
    expect(tf.tidy(() => tf.sum(tf.tensor(values, shape), axes, keepDims).shape)).toEqual(
      tf.tidy(() => tf.sum(tf.zeros(shape), axes, keepDims).shape),
    );
  });

  it('Identity shares the data: a clone outlives its source, and nothing leaks', async () => {
    await onBackend('wasm');
    const before = tf.memory();
    const x = tf.tensor([1, 2, 3]);
    const y = tf.clone(x);
    x.dispose();
    expect(Array.from(y.dataSync())).toEqual([1, 2, 3]);
    y.dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
  });
});

describe("ReLU's gradient as one kernel (SnnlReluGrad) agrees with tfjs's composition on cpu", () => {
  const random = seeded(50);
  const special = [0, -0, 1e-30, -1e-30, Infinity, -Infinity, NaN, 2, -2];
  const cases: number[][] = [[7], [3, 5], [1003], [64, 81]]; // tails of 3 and 3; 5184 elements split with the helper
  it.each(cases)('shape %j, with zeros, infinities and NaN, first and second derivatives', async (...shape) => {
    const size = shape.reduce((p, n) => p * n, 1);
    const xv = Array.from({ length: size }, (_, i) => (i < special.length ? special[i]! : random() * 2 - 1));
    const wv = Array.from({ length: size }, (_, i) => (i === 1 ? NaN : random() * 2 - 1));
    const run = () => {
      const x = tf.tensor(xv, shape);
      const w = tf.tensor(wv, shape);
      const first = tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), w)))(x);
      const second = tf.grad((a: tf.Tensor) =>
        tf.sum(tf.mul(tf.grad((b: tf.Tensor) => tf.sum(tf.square(tf.relu(b))))(a), w)),
      )(x);
      return [first, second];
    };
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    got.forEach((g, k) => expectSameValues(g, expected[k]!));
  });
});

describe('wasm Transpose, Slice and PadV2 agree with cpu exactly', () => {
  const random = seeded(45);
  const values = (shape: number[]) => Array.from({ length: shape.reduce((p, n) => p * n, 1) }, () => random() * 2 - 1);
  const integers = (shape: number[]) => values(shape).map((v) => Math.round(v * 1e6));

  it('collapses a permutation to its moving axes', () => {
    expect(collapsePermutation([128, 14, 14, 64], [3, 1, 2, 0])).toEqual({ shape: [128, 196, 64], perm: [2, 1, 0] });
    expect(collapsePermutation([128, 30, 30, 1], [3, 1, 2, 0])).toEqual({ shape: [128, 900], perm: [1, 0] });
    expect(collapsePermutation([2, 3, 4], [1, 0, 2])).toEqual({ shape: [2, 3, 4], perm: [1, 0, 2] });
    expect(collapsePermutation([2, 3, 4], [0, 1, 2])).toEqual({ shape: [24], perm: [0] });
  });

  const transposes: Array<[number[], number[], 'float32' | 'int32']> = [
    [[5, 7], [1, 0], 'float32'],
    [[64, 70], [1, 0], 'float32'], // tiles of 32 with a remainder
    [[3, 33, 17], [0, 2, 1], 'float32'],
    [[6, 5, 4, 3], [3, 1, 2, 0], 'float32'],
    [[6, 1, 4, 3], [3, 1, 2, 0], 'float32'],
    [[40, 50], [1, 0], 'int32'],
    [[300, 301], [1, 0], 'float32'], // one matrix, split by columns with the helper thread
    [[301, 300], [1, 0], 'float32'], // split by rows
    [[128, 14, 14, 5], [3, 1, 2, 0], 'float32'], // split by matrices
    [[9, 130, 70], [0, 2, 1], 'float32'], // split by matrices
    [[2, 3, 4], [1, 0, 2], 'float32'], // a transpose of blocks of 4
    [[5, 6, 7], [1, 0, 2], 'float32'], // blocks of 7: four floats at a time, then three
    [[128, 3, 3, 64], [1, 2, 0, 3], 'float32'], // the filter gradient's dy, split by columns
    [[3, 4, 5, 9], [0, 2, 1, 3], 'int32'], // batched blocks
    [[6, 40, 5, 9], [0, 2, 1, 3], 'float32'], // batched, split by matrices
    [[4, 5, 6, 7], [2, 0, 3, 1], 'float32'], // the stock kernel
  ];
  it.each(transposes)('transpose %j by %j (%s)', async (shape, perm, dtype) => {
    const data = dtype === 'int32' ? integers(shape) : values(shape);
    const run = () => [tf.transpose(tf.tensor(data, shape, dtype), perm)];
    const [expected] = await on('cpu', run);
    const [got] = await on('wasm', run);
    expectSameValues(got!, expected!);
    await onBackend('wasm');
    expect(tf.tidy(() => tf.transpose(tf.zeros(shape), perm).shape)).toEqual(perm.map((a) => shape[a]));
  });

  const slices: Array<[number[], number[], number[], 'float32' | 'int32']> = [
    [[128, 14, 14, 8], [0, 1, 1, 0], [128, 12, 12, 8], 'float32'], // the padding layer's gradient
    [[10, 100], [2, 5], [3, 90], 'float32'],
    [[4, 200], [1, 0], [-1, -1], 'float32'], // one run
    [[5, 6, 70], [1, 2, 3], [3, 2, 64], 'int32'],
    [[3, 4, 5], [1, 1, 1], [2, 2, 2], 'float32'], // short runs: the stock kernel
  ];
  it.each(slices)('slice %j from %j size %j (%s)', async (shape, begin, size, dtype) => {
    const data = dtype === 'int32' ? integers(shape) : values(shape);
    const run = () => [tf.slice(tf.tensor(data, shape, dtype), begin, size)];
    const [expected] = await on('cpu', run);
    const [got] = await on('wasm', run);
    expectSameValues(got!, expected!);
  });

  const pads: Array<[number[], [number, number][], number, 'float32' | 'int32']> = [
    [
      [16, 28, 28, 1],
      [
        [0, 0],
        [1, 1],
        [1, 1],
        [0, 0],
      ],
      0,
      'float32',
    ], // the padding layer: runs of 28
    [
      [3, 4, 70],
      [
        [1, 2],
        [0, 0],
        [0, 0],
      ],
      1.5,
      'float32',
    ], // one run of 280 per image
    [[5], [[2, 3]], -1, 'float32'],
    [
      [2, 3],
      [
        [1, 0],
        [0, 2],
      ],
      7,
      'int32',
    ],
    [
      [2, 0, 3],
      [
        [1, 1],
        [1, 0],
        [0, 0],
      ],
      0,
      'float32',
    ], // empty input
  ];
  it.each(pads)('pad %j by %j with %d (%s)', async (shape, paddings, value, dtype) => {
    const data = dtype === 'int32' ? integers(shape) : values(shape);
    const run = () => [tf.pad(tf.tensor(data, shape, dtype), paddings, value)];
    const [expected] = await on('cpu', run);
    const [got] = await on('wasm', run);
    expectSameValues(got!, expected!);
  });

  it('leaks no tensor or memory', async () => {
    await onBackend('wasm');
    const x = tf.randomNormal([128, 14, 14, 5]);
    const before = tf.memory();
    tf.transpose(x, [3, 1, 2, 0]).dispose();
    tf.slice(x, [0, 1, 1, 0], [128, 12, 12, 5]).dispose();
    tf.pad(x, [
      [0, 0],
      [1, 1],
      [1, 1],
      [0, 0],
    ]).dispose();
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
    x.dispose();
  });
});

describe.each<[BackpropInputStrategy, number | undefined, BackpropFilterStrategy]>([
  ['auto', undefined, 'auto'],
  ['phases', undefined, 'conv'],
  ['columns', undefined, 'columns'],
  ['columns', 1, 'conv'], // one image per chunk
])(
  'wasm conv2d gradients (Conv2DBackpropInput: %s, column limit %s; Conv2DBackpropFilter: %s) agree with cpu',
  (way, limit, filterWay) => {
    beforeAll(() => {
      setBackpropInputStrategy(way, limit);
      setBackpropFilterStrategy(filterWay);
    });
    afterAll(() => {
      setBackpropInputStrategy('auto');
      setBackpropFilterStrategy('auto');
    });
    const random = seeded(43);
    const values = (n: number) => Array.from({ length: n }, () => random() * 2 - 1);
    it.each(CONV_CASES)('x %j filter %j stride %j pad %j', async (xShape, fShape, strides, pad) => {
      const xValues = values(xShape.reduce((p, n) => p * n, 1));
      const fValues = values(fShape.reduce((p, n) => p * n, 1));
      const run = () => {
        const x = tf.tensor4d(xValues, xShape as [number, number, number, number]);
        const f = tf.tensor4d(fValues, fShape as [number, number, number, number]);
        const out = tf.conv2d(x, f, strides, pad);
        const again = seeded(out.size);
        const weights = tf.tensor(Array.from({ length: out.size }, again), out.shape);
        const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad), weights)),
        )([x, f]);
        return [out, gx!, gf!];
      };
      const expected = await on('cpu', run);
      const got = await on('wasm', run);
      got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!)).toBeLessThan(1e-5));
    });

    it('leaks no tensor or memory in a conv2d gradient', async () => {
      await onBackend('wasm');
      const x = tf.randomNormal([2, 12, 12, 3]);
      const f = tf.randomNormal([5, 5, 3, 4]);
      const before = tf.memory();
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
        tf.sum(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 2, 1)),
      )([x, f]);
      tf.dispose(grads);
      expect(tf.memory().numTensors).toBe(before.numTensors);
      expect(tf.memory().numBytes).toBe(before.numBytes);
      tf.dispose([x, f]);
    });
  },
);

describe('wasm MaxPoolGrad agrees with cpu', () => {
  const random = seeded(47);
  it.each(MAX_POOL_CASES)('x %j filter %i stride %i pad %j', async (shape, filter, stride, pad) => {
    // Distinct values, so that every window has one maximum.
    const values = Array.from({ length: shape.reduce((p, n) => p * n, 1) }, () => random());
    const run = () => {
      const x = tf.tensor4d(values, shape as [number, number, number, number]);
      const out = tf.maxPool(x, filter, stride, pad);
      const again = seeded(out.size);
      const weights = tf.tensor(Array.from({ length: out.size }, again), out.shape);
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(v as tf.Tensor4D, filter, stride, pad), weights)))(
        x,
      );
      return [out, g];
    };
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!)).toBeLessThan(1e-6));
  });
});

describe('wasm fused SNNL agrees with the composed loss on cpu', () => {
  fusedSnnlCases('wasm', it);

  it.each(['cosine', 'squared-euclidean'] as const)(
    'agrees on rows long enough for the helper thread to take half of each pass (%s)',
    async (distance) => {
      const random = seeded(49);
      const [b, d] = [64, 1030]; // 65,920 elements; 1030 = 4 x 257 + 2
      const xv = Array.from({ length: b * d }, () => random() * 2 - 1);
      const labels = Int32Array.from({ length: b }, (_, i) => i % 5);
      const run = () => {
        const x = tf.tensor2d(xv, [b, d]);
        const options = { distance, temperature: 30 };
        return [snnl(x, labels, options), tf.grad((f: tf.Tensor) => snnl(f, labels, options))(x)];
      };
      const expected = await on('cpu', run);
      const got = await on('wasm', run);
      got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!)).toBeLessThan(1e-5));
    },
  );

  it('leaks no tensor or memory', async () => {
    await onBackend('wasm');
    const x = tf.randomNormal([32, 50]);
    const labels = Int32Array.from({ length: 32 }, (_, i) => i % 4);
    const before = tf.memory();
    for (const distance of ['cosine', 'squared-euclidean', 'euclidean'] as const) {
      tf.dispose(tf.grad((f: tf.Tensor) => snnl(f, labels, { distance }))(x));
    }
    expect(tf.memory().numTensors).toBe(before.numTensors);
    expect(tf.memory().numBytes).toBe(before.numBytes);
    x.dispose();
  });
});

describe("wasm kernels without snnl's wasm runtime (their JavaScript and stock paths) agree with cpu", () => {
  beforeAll(() => setWasmRuntimeEnabled(false));
  afterAll(() => setWasmRuntimeEnabled(true));
  const random = seeded(48);
  const values = (n: number) => Array.from({ length: n }, () => random() * 2 - 1);

  it("ReLU's gradient", async () => {
    const xv = [...values(1001), NaN, 0, -0];
    const run = () => [tf.grad((a: tf.Tensor) => tf.sum(tf.mul(tf.relu(a), 3)))(tf.tensor(xv))];
    const [expected] = await on('cpu', run);
    const [got] = await on('wasm', run);
    expectSameValues(got!, expected!);
  });

  it('Transpose', async () => {
    const data = values(64 * 70);
    const run = () => [tf.transpose(tf.tensor(data, [64, 70]), [1, 0])];
    const [expected] = await on('cpu', run);
    const [got] = await on('wasm', run);
    expectSameValues(got!, expected!);
  });

  it('Conv2DBackpropInput by columns (col2im in JavaScript)', async () => {
    setBackpropInputStrategy('columns');
    try {
      const xValues = values(2 * 14 * 14 * 6);
      const fValues = values(6 * 6 * 6 * 5);
      const run = () => [
        tf.grad((a: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(a as tf.Tensor4D, tf.tensor4d(fValues, [6, 6, 6, 5]), 2, 1))),
        )(tf.tensor4d(xValues, [2, 14, 14, 6])),
      ];
      const [expected] = await on('cpu', run);
      const [got] = await on('wasm', run);
      expect(maxRelativeDifference(got!, expected!)).toBeLessThan(1e-5);
    } finally {
      setBackpropInputStrategy('auto');
    }
  });

  it('Conv2DBackpropFilter by columns (the column matrix in JavaScript)', async () => {
    setBackpropFilterStrategy('columns');
    try {
      const xValues = values(2 * 13 * 12 * 3);
      const fValues = values(5 * 4 * 3 * 2);
      const run = () => [
        tf.grad((f: tf.Tensor) =>
          tf.sum(tf.square(tf.conv2d(tf.tensor4d(xValues, [2, 13, 12, 3]), f as tf.Tensor4D, 2, 'same'))),
        )(tf.tensor4d(fValues, [5, 4, 3, 2])),
      ];
      const [expected] = await on('cpu', run);
      const [got] = await on('wasm', run);
      expect(maxRelativeDifference(got!, expected!)).toBeLessThan(1e-5);
    } finally {
      setBackpropFilterStrategy('auto');
    }
  });

  it.each(['cosine', 'squared-euclidean'] as const)('fused SNNL, %s (transposes in JavaScript)', async (distance) => {
    const b = 24;
    const xv = values(b * 40);
    const labels = Int32Array.from({ length: b }, (_, i) => i % 3);
    const run = () => {
      const x = tf.tensor2d(xv, [b, 40]);
      return [snnl(x, labels, { distance }), tf.grad((f: tf.Tensor) => snnl(f, labels, { distance }))(x)];
    };
    const expected = await on('cpu', run);
    const got = await on('wasm', run);
    got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!)).toBeLessThan(1e-5));
  });
});
