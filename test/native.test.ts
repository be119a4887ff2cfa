/**
 * The native (LibTorch) backend: every accelerated kernel against the cpu backend on random shapes,
 * gradients included; the fused SNNL and Adam kernels; buffer reuse that never overwrites live data; no
 * leaks; and a short training run. Skipped with the reason where the addon is not built (it needs
 * Debian's libtorch-dev); SNNL_REQUIRE_ALL=1 (CI) makes that a failure.
 */
import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect } from 'vitest';
import { codeMismatch, loadAddon, type NativeAddon } from '../src/engine/native/addon.js';
import { NATIVE_CODES } from '../src/kernel-names.js';
import { acceleratedKernels } from '../src/engine/native/register.js';
import { buildNetwork } from '../src/models/models.js';
import { FusedAdamOptimizer } from '../src/training/optimizer.js';
import { trainStep } from '../src/training/step.js';
import { needs, onBackend } from './helpers.js';
import { CONV_CASES, MAX_POOL_CASES, fusedSnnlCases, maxRelativeDifference, valuesOn as on } from './kernel-cases.js';
import { seeded } from './oracle.js';

const built = 'addon' in loadAddon();
const test = needs(built, 'the native addon is not built (sudo apt-get install libtorch-dev; npm run build:native)');

async function agree(run: () => tf.Tensor | tf.Tensor[], tolerance = 1e-5): Promise<void> {
  const expected = await on('cpu', run);
  const got = await on('native', run);
  got.forEach((g, k) => expect(maxRelativeDifference(g, expected[k]!), `output ${k}`).toBeLessThan(tolerance));
}

const size = (shape: number[]) => shape.reduce((p, n) => p * n, 1);

function randomValues(seed: number) {
  const random = seeded(seed);
  return (n: number) => Array.from({ length: n }, () => random() * 2 - 1);
}

/** A weighted sum, so that each output element gets its own upstream gradient. */
function weighted(t: tf.Tensor, seed: number): tf.Scalar {
  const again = seeded(seed);
  return tf.sum(tf.mul(t, tf.tensor(Array.from({ length: t.size }, again), t.shape)));
}

describe('native backend', () => {
  test('accelerates the kernels of a training step and falls back to cpu for the rest', async () => {
    await onBackend('native');
    const names = acceleratedKernels();
    for (const name of ['BatchMatMul', 'Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'MaxPoolGrad'])
      expect(names).toContain(name);
    for (const name of ['SnnlFusedRows', 'SnnlFusedRowsGrad', 'SnnlFusedAdam', 'TopK']) expect(names).toContain(name);
    // Not accelerated, still there: the cpu kernel.
    expect(tf.getKernel('Cumsum', 'native')).toBeDefined();
    expect(tf.tidy(() => Array.from(tf.cumsum(tf.tensor1d([1, 2, 3])).dataSync()))).toEqual([1, 3, 6]);
  });
});

describe('the op codes shared with C++ (src/kernel-names.ts)', () => {
  test('the built addon reports the same codes as the TypeScript table', () => {
    const loaded = loadAddon() as { addon: NativeAddon };
    expect(loaded.addon.codes()).toEqual(JSON.parse(JSON.stringify(NATIVE_CODES)));
    expect(codeMismatch(loaded.addon)).toBeUndefined();
  });
});

describe('an addon whose codes differ is refused', () => {
  // No addon needed: the check is on what `codes()` returns.
  const codes = () => JSON.parse(JSON.stringify(NATIVE_CODES)) as ReturnType<NativeAddon['codes']>;
  const it = needs(true, '');
  it('names the table, the op and both codes', () => {
    const swapped = codes();
    swapped.binary['Sub'] = 2;
    expect(codeMismatch({ codes: () => swapped })).toBe('binary op Sub is 2 in the addon, 1 here');
    const extra = codes();
    extra.unary['Erf'] = 12;
    expect(codeMismatch({ codes: () => extra })).toBe('unary op Erf is 12 in the addon, undefined here');
    expect(codeMismatch({} as NativeAddon)).toBe('it does not report its op codes');
    expect(codeMismatch({ codes: codes })).toBe('it has no topK()');
    expect(codeMismatch({ codes: codes, topK: () => undefined })).toBe('it has no knnMerge()');
    const upToKnn = { codes: codes, topK: () => undefined, knnMerge: () => undefined };
    expect(codeMismatch(upToKnn)).toBe('it has no tile()');
    expect(codeMismatch({ ...upToKnn, tile: () => undefined })).toBe('it has no batchNorm()');
    const upToNorm = { ...upToKnn, tile: () => undefined, batchNorm: () => undefined };
    expect(codeMismatch(upToNorm)).toBe('it has no snnlSweep()');
    expect(codeMismatch({ ...upToNorm, snnlSweep: () => undefined })).toBe('it has no snnlRange()');
    const upToSweep = { ...upToNorm, snnlSweep: () => undefined, snnlRange: () => undefined };
    expect(codeMismatch(upToSweep)).toBe('it has no knnExact()');
    expect(codeMismatch({ ...upToSweep, knnExact: () => undefined, knnRefine: () => undefined })).toBe(
      'it has no orthonormalize()',
    );
    const all = {
      ...upToSweep,
      knnExact: () => undefined,
      knnRefine: () => undefined,
      orthonormalize: () => undefined,
    };
    expect(codeMismatch(all)).toBeUndefined();
  });
});

describe('native BatchMatMul and _FusedMatMul agree with cpu', () => {
  const values = randomValues(51);
  const shapes: Array<[number[], number[], boolean, boolean]> = [
    [[5, 7], [7, 3], false, false],
    [[7, 5], [7, 3], true, false],
    [[5, 7], [3, 7], false, true],
    [[7, 5], [3, 7], true, true],
    [[4, 33, 17], [4, 17, 9], false, false],
    [[4, 17, 33], [4, 9, 17], true, true],
    [[3, 17, 33], [3, 17, 9], true, false],
    [[64, 129], [64, 65], true, false],
    [[128, 500], [500, 500], false, true],
  ];
  for (const [aShape, bShape, ta, tb] of shapes) {
    test(`a ${aShape} b ${bShape} transposeA ${ta} transposeB ${tb}, with gradients`, async () => {
      const av = values(size(aShape));
      const bv = values(size(bShape));
      await agree(() => {
        const a = tf.tensor(av, aShape);
        const b = tf.tensor(bv, bShape);
        const [ga, gb] = tf.grads((p: tf.Tensor, q: tf.Tensor) => weighted(tf.matMul(p, q, ta, tb), 7))([a, b]);
        return [tf.matMul(a, b, ta, tb), ga!, gb!];
      });
    });
  }

  test('broadcasts batches, and fuses a bias with linear and relu', async () => {
    const av = values(2 * 6);
    const bv = values(3 * 6 * 5);
    const bias = values(5);
    await agree(() => {
      const a = tf.tensor3d(av, [1, 2, 6]);
      const b = tf.tensor3d(bv, [3, 6, 5]);
      const a2 = tf.reshape(tf.tensor(av.concat(av, av, av, av, av, av, av)), [16, 6]) as tf.Tensor2D;
      const w = tf.reshape(tf.slice(b, [0, 0, 0], [1, 6, 5]), [6, 5]) as tf.Tensor2D;
      const fused = (activation: 'linear' | 'relu') =>
        tf.fused.matMul({ a: a2, b: w, bias: tf.tensor1d(bias), activation });
      return [tf.matMul(a, b), fused('linear'), fused('relu')];
    });
  });
});

describe('native conv2d and its gradients agree with cpu', () => {
  const values = randomValues(53);
  for (const [xShape, fShape, strides, pad] of CONV_CASES) {
    test(`x ${xShape} filter ${fShape} stride ${strides} pad ${JSON.stringify(pad)}`, async () => {
      const xv = values(size(xShape));
      const fv = values(size(fShape));
      await agree(() => {
        const x = tf.tensor4d(xv, xShape as [number, number, number, number]);
        const f = tf.tensor4d(fv, fShape as [number, number, number, number]);
        const conv = (a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, pad);
        const [gx, gf] = tf.grads((a: tf.Tensor, b: tf.Tensor) => weighted(conv(a, b), 11))([x, f]);
        return [conv(x, f), gx!, gf!];
      });
    });
  }

  test('dilated convolution, and a fused bias with relu', async () => {
    const xv = values(2 * 11 * 11 * 3);
    const fv = values(3 * 3 * 3 * 4);
    const bias = values(4);
    await agree(() => {
      const x = tf.tensor4d(xv, [2, 11, 11, 3]);
      const f = tf.tensor4d(fv, [3, 3, 3, 4]);
      return [
        tf.conv2d(x, f, 1, 'same', 'NHWC', 2),
        tf.fused.conv2d({ x, filter: f, strides: 2, pad: 'same', bias: tf.tensor1d(bias), activation: 'relu' }),
      ];
    });
  });
});

describe('native max pooling and its gradient agree with cpu', () => {
  const random = seeded(57);
  for (const [shape, filter, stride, pad] of MAX_POOL_CASES) {
    test(`x ${shape} filter ${filter} stride ${stride} pad ${pad}`, async () => {
      // Distinct values, so that every window has one maximum.
      const values = Array.from({ length: size(shape) }, () => random());
      await agree(() => {
        const x = tf.tensor4d(values, shape as [number, number, number, number]);
        const pool = (v: tf.Tensor) => tf.maxPool(v as tf.Tensor4D, filter, stride, pad);
        return [pool(x), tf.grad((v: tf.Tensor) => weighted(pool(v), 13))(x)];
      });
    });
  }
});

describe('native elementwise, reduction and layout kernels agree with cpu', () => {
  const values = randomValues(59);
  const shape = [6, 70, 5];
  const xv = values(size(shape));
  // Special values: NaN, infinities, zeros (Step at 0 and NaN, Maximum with NaN, Log of 0 and negatives).
  xv.splice(0, 6, NaN, Infinity, -Infinity, 0, -0, 1e-30);

  test('unary ops', async () => {
    await agree(() => {
      const x = tf.tensor(xv, shape);
      const positive = tf.abs(x);
      return [
        tf.relu(x),
        tf.neg(x),
        tf.step(x),
        tf.step(x, 0.3),
        tf.square(x),
        tf.exp(x),
        tf.log(positive),
        tf.sqrt(positive),
        tf.sigmoid(x),
        tf.tanh(x),
        tf.abs(x),
        tf.rsqrt(positive),
        tf.reciprocal(x),
        tf.leakyRelu(x, 0.2),
        tf.grad((v: tf.Tensor) => weighted(tf.leakyRelu(v, 0.3), 7))(x),
      ];
    }, 1e-6);
  });

  test('binary ops, with broadcasting', async () => {
    const yv = values(size(shape));
    const row = values(5);
    const column = values(6);
    await agree(() => {
      const x = tf.tensor(xv, shape);
      const y = tf.tensor(yv, shape);
      const r = tf.tensor1d(row);
      const c = tf.tensor3d(column, [6, 1, 1]);
      return [
        tf.add(x, y),
        tf.sub(x, r),
        tf.mul(c, x),
        tf.div(x, y),
        tf.maximum(x, r),
        tf.minimum(c, x),
        tf.squaredDifference(x, y),
        tf.mul(x, 0.5),
      ];
    }, 1e-6);
  });

  test('reductions over any axes, with and without keepDims, and their gradients', async () => {
    const finite = values(size(shape));
    await agree(() => {
      const x = tf.tensor(finite, shape);
      const outs: tf.Tensor[] = [];
      for (const axis of [0, 1, 2, [0, 2], [1, 2], -1])
        for (const keepDims of [false, true])
          outs.push(
            tf.sum(x, axis, keepDims),
            tf.max(x, axis, keepDims),
            tf.min(x, axis, keepDims),
            tf.mean(x, axis, keepDims),
          );
      outs.push(tf.sum(x), tf.max(x), tf.grad((v: tf.Tensor) => weighted(tf.max(v, 1), 3))(x));
      return outs;
    });
  });

  test('transpose, slice and pad', async () => {
    await agree(() => {
      const x = tf.tensor(xv, shape);
      return [
        tf.transpose(x, [2, 0, 1]),
        tf.transpose(x, [1, 0, 2]),
        tf.slice(x, [1, 3, 1], [4, 60, 3]),
        tf.slice(x, [2, 0, 0], [3, 70, 5]),
        tf.pad(x, [
          [1, 2],
          [0, 3],
          [2, 0],
        ]),
        tf.pad(
          x,
          [
            [0, 0],
            [1, 1],
            [0, 0],
          ],
          -2.5,
        ),
      ];
    });
  });
});

describe('native Tile and batch normalization agree with cpu', () => {
  const values = randomValues(61);
  const shape = [4, 6, 5, 8];
  const xv = values(size(shape));
  const channel = () => values(8);
  const [mean, offset, scale] = [channel(), channel(), channel()];
  const variance = channel().map((v) => Math.abs(v) + 0.1);
  const wideMean = values(6 * 40);
  const wideVariance = values(6 * 40).map((v) => Math.abs(v) + 0.1);

  test('tile on every axis', async () => {
    await agree(() => {
      const x = tf.tensor(xv, shape);
      return [tf.tile(x, [2, 1, 1, 1]), tf.tile(x, [1, 3, 2, 1]), tf.tile(tf.tensor1d(mean), [40])];
    });
  });

  test('batchNorm with per-channel parameters (with and without offset and scale, 1-D and 4-D), and its gradients', async () => {
    await agree(() => {
      const x = tf.tensor(xv, shape);
      const p = (v: number[], rank4 = false) => (rank4 ? tf.tensor4d(v, [1, 1, 1, 8]) : tf.tensor1d(v));
      const bn = (v: tf.Tensor) => tf.batchNorm(v, p(mean), p(variance), p(offset), p(scale), 1e-3);
      return [
        bn(x),
        tf.batchNorm(x, p(mean, true), p(variance, true), p(offset, true), p(scale, true), 1e-5),
        tf.batchNorm(x, p(mean), p(variance)),
        tf.grad((v: tf.Tensor) => weighted(bn(v), 5))(x),
        // A broadcast that is not per channel: the cpu kernel's.
        tf.batchNorm(tf.tensor(xv, [4, 6, 40]), tf.tensor2d(wideMean, [6, 40]), tf.tensor2d(wideVariance, [6, 40])),
      ];
    });
  });
});

describe('native TopK agrees with cpu, ties included', () => {
  // Values on a coarse grid, so that every row has many ties; -Infinity and a row of one value.
  const random = seeded(61);
  const rows = 9;
  const cols = 300;
  const xv = Array.from({ length: rows * cols }, () => Math.floor(random() * 7) - 3);
  xv.splice(5, 3, -Infinity, -Infinity, Infinity);
  xv.fill(2, 8 * cols, 9 * cols);

  test('values and indices, for k from 1 to every column, in 2-d and 3-d', async () => {
    for (const k of [1, 5, 75, cols]) {
      const run = () => {
        const x = tf.tensor(xv, [rows, cols]);
        const a = tf.topk(x, k);
        const b = tf.topk(tf.reshape(x, [3, 3, cols]), k);
        return [a.values, a.indices, b.values, b.indices];
      };
      const expected = await on('cpu', run);
      const got = await on('native', run);
      got.forEach((g, i) => expect(Array.from(g), `k ${k}, output ${i}`).toEqual(Array.from(expected[i]!)));
    }
  });

  test('leaves no tensors behind', async () => {
    await onBackend('native');
    const before = tf.memory().numTensors;
    tf.tidy(() => {
      tf.topk(tf.tensor(xv, [rows, cols]), 4);
    });
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('native fused SNNL agrees with the composed loss on cpu', () => {
  fusedSnnlCases('native', test);
});

describe('native training', () => {
  test('the fused Adam update matches cpu step for step', async () => {
    const run = () => {
      const w = tf.variable(tf.tensor2d(randomValues(67)(40 * 30), [40, 30]));
      const optimizer = new FusedAdamOptimizer(0.01);
      const target = tf.tensor2d(randomValues(71)(40 * 30), [40, 30]);
      for (let step = 0; step < 5; step++) optimizer.minimize(() => tf.sum(tf.square(tf.sub(w, target))));
      const out = w.clone();
      w.dispose();
      optimizer.dispose();
      return out;
    };
    await agree(run, 1e-5);
  });

  // Plain SGD, so that weights differ only as much as the gradients do (Adam's first steps move each
  // weight by about lr * sign(g), which amplifies rounding where g is near 0; its kernel is checked above).
  test('CNN training steps with SNNL on every hidden layer match cpu, and leak no tensor', async () => {
    const step = (backend: string) => async () => {
      await onBackend(backend);
      const net = buildNetwork('cnn', [28, 28, 1], 10, 3);
      const optimizer = tf.train.sgd(0.05);
      // 8 images, two of each of 4 classes: the cpu backend's convolutions take most of this test's time
      // (172 s with 16 images on a slower 2-core host).
      const labels = Int32Array.from({ length: 8 }, (_, i) => i % 4);
      const x = tf.tensor4d(randomValues(73)(8 * 28 * 28), [8, 28, 28, 1]);
      const batch = { x, y: tf.tensor1d(labels, 'int32'), labels };
      const spec = {
        classes: 10,
        factor: -10,
        temperature: 100,
        layers: net.hiddenLayers.map((_, index) => ({ index, weight: 1 })),
        combine: 'sum' as const,
        snnl: { preset: 'pt-snnl' as const, distance: 'cosine' as const },
        multipliers: [],
      };
      trainStep(net, optimizer, batch, spec);
      const before = tf.memory().numTensors;
      const losses = [0, 1].map(() => trainStep(net, optimizer, batch, spec));
      expect(tf.memory().numTensors).toBe(before);
      const weights = net.model.getWeights().map((w) => Float32Array.from(w.dataSync() as Float32Array));
      net.model.dispose();
      optimizer.dispose();
      tf.dispose([batch.x, batch.y]);
      return { losses, weights };
    };
    const cpu = await step('cpu')();
    const native = await step('native')();
    native.weights.forEach((w, k) => expect(maxRelativeDifference(w, cpu.weights[k]!)).toBeLessThan(1e-4));
    native.losses.forEach((l, k) => {
      expect(l.loss).toBeCloseTo(cpu.losses[k]!.loss, 4);
      expect(l.snnl).toBeCloseTo(cpu.losses[k]!.snnl, 4);
      expect(l.correct).toBe(cpu.losses[k]!.correct);
    });
    expect(native.losses[1]!.loss).not.toBe(native.losses[0]!.loss);
  }, 120_000);

  test('reused buffers never overwrite live data or values already read', async () => {
    await onBackend('native');
    const x = tf.add(tf.ones([300, 40]), 1); // a native output, from the pool
    const read = x.dataSync();
    const view = tf.slice(x, [0, 0], [100, 40]); // the cpu kernel's view of x's buffer
    const kept = Float32Array.from(view.dataSync() as Float32Array);
    x.dispose();
    // Same sizes again: a pool that handed x's buffer out now would overwrite the view.
    const others = [0, 1, 2].map((k) => tf.add(tf.ones([300, 40]), 10 + k));
    expect(Array.from(view.dataSync() as Float32Array)).toEqual(Array.from(kept));
    expect(read.every((v) => v === 2)).toBe(true);
    tf.dispose([view, ...others]);
  });
});

describe('snnl on the command line with --backend native', () => {
  test('trains the REFERENCE CNN with SNNL on every hidden layer for a short run, and reports the backend', () => {
    const out = join(mkdtempSync(join(tmpdir(), 'snnl-native-')), 'run');
    const cli = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
    const run = spawnSync(
      process.execPath,
      [
        cli,
        'train',
        '--backend',
        'native',
        '--dataset',
        'mnist',
        '--model',
        'cnn',
        '--factor',
        '10',
        '--preset',
        'pt-snnl',
        '--distance',
        'cosine',
        '--epochs',
        '1',
        '--train-subset',
        '1024',
        '--eval-sample',
        '200',
        '--out',
        out,
      ],
      { encoding: 'utf8' },
    );
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout + run.stderr).toMatch(/native \(LibTorch, \d+ threads?\)/);
    const metrics = JSON.parse(readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n')[0]!);
    // Eight batches are enough to learn something: well above chance (10%) on the real test split.
    expect(metrics.test.accuracy).toBeGreaterThan(0.3);
    expect(Object.keys(metrics.entanglement)).toEqual(['conv1', 'conv2', 'fc1', 'fc2', 'fc3']);
  }, 300_000);
});
