/**
 * Deep k-NN: the exact k-NN search against a brute-force loop (ties included) on every backend, p-values
 * against a hand computation in float64, AUROC against a pairwise count, FGSM's bound, the outlier sets,
 * credibility on a small trained network, t-SNE, and the command's errors before any work.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { encodeNpy, parseNpy } from '../src/io/npy.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  calibrationScores,
  conformalVerdict,
  DeepKnn,
  nonconformity,
  pValue,
  type LayerTrainFeatures,
} from '../src/analysis/dknn.js';
import {
  buildKnnIndex,
  canPrune,
  nearestNeighbors,
  passShare,
  prunes,
  type FeatureMatrix,
} from '../src/analysis/knn.js';
import { auroc, fprAtTpr, histogram, knnPurity, reliability } from '../src/analysis/metrics.js';
import { fgsm, joinChunks, probe } from '../src/analysis/probe.js';
import { loadAddon } from '../src/engine/native/addon.js';
import { loadDataset } from '../src/data/datasets.js';
import { fontFiles, INSTALL_FONTS, pixelsOf, renderedLetters, rotated90, uniformNoise } from '../src/data/outliers.js';
import { buildNetwork } from '../src/models/models.js';
import { networkOf, trainWithSnnl } from '../src/training/with-snnl.js';
import type { Network } from '../src/models/models.js';
import { createRun, saveRunState } from '../src/training/run-store.js';
import { configFromFlags } from '../src/cli/train-flags.js';
import { FusedAdamOptimizer } from '../src/training/optimizer.js';
import { inputErrorMessage, needs, onBackend } from './helpers.js';
import { seeded } from './oracle.js';
import { tsne2d } from '../src/report/embedding.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

/** Brute force: every distance in float64, sorted by (distance, index). */
function bruteForce(train: number[][], queries: number[][], k: number) {
  return queries.map((q) => {
    const d = train.map((t, i) => ({ i, d: t.reduce((s, v, j) => s + (v - q[j]!) ** 2, 0) }));
    d.sort((a, b) => a.d - b.d || a.i - b.i);
    return d.slice(0, k);
  });
}

function matrix(rows: number[][]): FeatureMatrix {
  return { rows: rows.length, dim: rows[0]!.length, values: Float32Array.from(rows.flat()) };
}

function chunked(rows: number[][], size: number): FeatureMatrix[] {
  const out: FeatureMatrix[] = [];
  for (let s = 0; s < rows.length; s += size) out.push(matrix(rows.slice(s, s + size)));
  return out;
}

// Small whole numbers: exact in float32, so distances tie exactly; duplicated rows tie at every k.
const random = seeded(71);
const TRAIN = Array.from({ length: 157 }, () => Array.from({ length: 6 }, () => Math.floor(random() * 4)));
TRAIN.splice(40, 3, TRAIN[3]!, TRAIN[3]!, TRAIN[7]!);
const QUERIES = Array.from({ length: 37 }, () => Array.from({ length: 6 }, () => Math.floor(random() * 4)));
QUERIES[0] = TRAIN[3]!;

const hasNative = 'addon' in loadAddon();
const backends = ['cpu', 'wasm', ...(hasNative ? ['native'] : [])];

describe('the exact k-NN search', () => {
  for (const backend of backends) {
    it(`agrees with a brute-force loop, ties to the lower index, on ${backend}`, async () => {
      await onBackend(backend);
      for (const [k, trainChunk, queryChunk] of [
        [1, 157, 37],
        [5, 20, 8],
        [75, 33, 16],
        [157, 64, 37],
      ] as const) {
        const found = nearestNeighbors(chunked(TRAIN, trainChunk), matrix(QUERIES), { k, queryChunk });
        const expected = bruteForce(TRAIN, QUERIES, k);
        expect(Array.from(found.indices), `k ${k}`).toEqual(expected.flatMap((row) => row.map((e) => e.i)));
        expect(Array.from(found.distances)).toEqual(expected.flatMap((row) => row.map((e) => e.d)));
      }
    });
  }

  it('leaves no tensors behind', async () => {
    for (const backend of backends) {
      await onBackend(backend);
      const before = tf.memory().numTensors;
      nearestNeighbors(chunked(TRAIN, 50), matrix(QUERIES), { k: 10, queryChunk: 10 });
      expect(tf.memory().numTensors, backend).toBe(before);
    }
  });

  it('refuses k above the training set and mismatched widths', async () => {
    await onBackend('cpu');
    expect(inputErrorMessage(() => nearestNeighbors(chunked(TRAIN, 50), matrix(QUERIES), { k: 158 }))).toBe(
      'k: is 158, larger than the 157 training points',
    );
    expect(inputErrorMessage(() => nearestNeighbors(chunked(TRAIN, 50), matrix([[1, 2]]), { k: 3 }))).toBe(
      'features: training rows have 6 values, queries 2',
    );
  });
});

/** 3,000 rows (and 200 queries) of width 300 near a 12-dimensional subspace, in 10 clusters, plus noise. */
function lowRank() {
  const r = seeded(5);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  const dim = 300;
  const factors = Array.from({ length: 12 }, () => Array.from({ length: dim }, gauss));
  const centres = Array.from({ length: 10 }, () => Array.from({ length: 12 }, () => 3 * gauss()));
  const row = () => {
    const c = centres[Math.floor(r() * 10)]!;
    const z = c.map((v) => v + gauss());
    return Array.from({ length: dim }, (_, j) => z.reduce((s, v, f) => s + v * factors[f]![j]!, 0) + 0.3 * gauss());
  };
  return { train: Array.from({ length: 3000 }, row), queries: Array.from({ length: 200 }, row) };
}

describe('the pruned k-NN search', () => {
  const onNative = needs(hasNative, 'the native addon is not built (npm run build:native)');

  onNative('agrees with a brute-force loop on the tie-laden small set, at every rank', async () => {
    await onBackend('native');
    for (const [k, rank, trainChunk, queryChunk] of [
      [1, 1, 157, 37],
      [5, 2, 20, 8],
      [75, 3, 33, 16],
      [157, 6, 64, 37],
    ] as const) {
      const found = nearestNeighbors(chunked(TRAIN, trainChunk), matrix(QUERIES), {
        k,
        queryChunk,
        prune: true,
        pruneRank: rank,
      });
      const expected = bruteForce(TRAIN, QUERIES, k);
      expect(Array.from(found.indices), `k ${k} rank ${rank}`).toEqual(expected.flatMap((row) => row.map((e) => e.i)));
      expect(Array.from(found.distances)).toEqual(expected.flatMap((row) => row.map((e) => e.d)));
    }
  });

  onNative('finds what the plain search finds on wide low-rank features, computing far fewer distances', async () => {
    await onBackend('native');
    const { train, queries } = lowRank();
    const plain = nearestNeighbors(chunked(train, 700), matrix(queries), { k: 10, queryChunk: 64, prune: false });
    const pruned = nearestNeighbors(chunked(train, 700), matrix(queries), {
      k: 10,
      queryChunk: 64,
      prune: true,
      pruneRank: 16,
    });
    expect(plain.exactPairs).toBe(200 * 3000);
    expect(pruned.exactPairs).toBeLessThan(0.2 * plain.exactPairs);
    // Both lists hold the k nearest by float64 distance, up to the float32 rounding of |q|^2 + |t|^2 - 2 q.t
    // (this data's norms are 10 times its neighbours' distances: the two searches swap a few near-ties).
    const truth = bruteForce(train, queries, 10);
    const norm = (v: number[]) => v.reduce((s, x) => s + x * x, 0);
    const widest = Math.max(...train.map(norm));
    let same = 0;
    for (const [q, row] of truth.entries()) {
      const tolerance = 1e-5 * (norm(queries[q]!) + widest);
      const exact = (i: number) => train[i]!.reduce((s, v, j) => s + (v - queries[q]![j]!) ** 2, 0);
      for (const found of [pruned, plain]) {
        const got = Array.from(found.indices.subarray(q * 10, q * 10 + 10), exact).sort((a, b) => a - b);
        got.forEach((d, j) => expect(Math.abs(d - row[j]!.d)).toBeLessThanOrEqual(tolerance));
      }
      for (let j = 0; j < 10; j++) same += pruned.indices[q * 10 + j] === plain.indices[q * 10 + j] ? 1 : 0;
    }
    expect(same).toBeGreaterThan(0.99 * 2000);
  });

  onNative(
    'builds an orthonormal basis, leaves no tensors behind, and is used by default only where it gains',
    async () => {
      await onBackend('native');
      const before = tf.memory().numTensors;
      const index = buildKnnIndex(chunked(TRAIN, 50), { rank: 4 });
      nearestNeighbors(chunked(TRAIN, 50), matrix(QUERIES), { k: 10, queryChunk: 10, prune: true, index });
      expect(tf.memory().numTensors).toBe(before);
      for (let a = 0; a < 4; a++) {
        for (let b = 0; b < 4; b++) {
          let dot = 0;
          for (let i = 0; i < 6; i++) dot += index.basis[i * 4 + a]! * index.basis[i * 4 + b]!;
          expect(Math.abs(dot - (a === b ? 1 : 0))).toBeLessThan(1e-6);
        }
      }
      expect(index.bounds.map((b) => b.length)).toEqual([50 * 6, 50 * 6, 50 * 6, 7 * 6]);
      expect(prunes({}, 12544, 60000)).toBe(true);
      expect(prunes({}, 128, 60000)).toBe(false);
      expect(prunes({ prune: false }, 12544, 60000)).toBe(false);
      // Where the bound would let most rows through (noise), `auto` computes every distance.
      const noise = seeded(9);
      const wide = { rows: 9000, dim: 1024, values: Float32Array.from({ length: 9000 * 1024 }, noise) };
      const few = { rows: 20, dim: 1024, values: Float32Array.from({ length: 20 * 1024 }, noise) };
      expect(passShare([wide], buildKnnIndex([wide]), 10)).toBeGreaterThan(0.05);
      expect(nearestNeighbors([wide], few, { k: 10 }).exactPairs).toBe(20 * 9000);
      const structured = chunked(lowRank().train, 1000);
      expect(passShare(structured, buildKnnIndex(structured, { rank: 16 }), 10)).toBeLessThan(0.05);
      await onBackend('cpu');
      expect(canPrune()).toBe(false);
      expect(prunes({ prune: true }, 12544, 60000)).toBe(false);
    },
  );
});

describe('conformal p-values, credibility and confidence', () => {
  it('match a hand computation in float64, in both forms', () => {
    // 2 layers, k = 3, 3 classes; neighbour labels of 2 inputs.
    const layer1 = Int32Array.from([0, 0, 1, 2, 2, 2]);
    const layer2 = Int32Array.from([0, 1, 1, 2, 1, 2]);
    const scores = nonconformity([layer1, layer2], 2, 3, 3);
    // Input 0: votes 0:3, 1:3, 2:0 -> 6 - votes; input 1: 0:0, 1:1, 2:5.
    expect(Array.from(scores)).toEqual([3, 3, 6, 6, 5, 1]);
    const calibration = [0, 0, 1, 3, 3, 4, 6];
    const standard = calibrationScores(calibration, 'standard');
    const reference = calibrationScores(calibration, 'reference');
    expect(Array.from(reference)).toEqual([1, 3, 3, 4, 6]);
    const hand = (cal: number[], s: number) => cal.filter((c) => c >= s).length / cal.length;
    for (const s of [0, 1, 2, 3, 5, 6, 7]) {
      expect(pValue(standard, s)).toBeCloseTo(hand(calibration, s), 15);
      expect(pValue(reference, s)).toBeCloseTo(hand([1, 3, 3, 4, 6], s), 15);
    }
    const p = Float64Array.from(scores, (s) => pValue(standard, s));
    const verdict = conformalVerdict(p, 3);
    expect(Array.from(verdict.prediction)).toEqual([0, 2]);
    expect(verdict.credibility[0]).toBeCloseTo(4 / 7, 15); // score 3: 3, 3, 4, 6 are >= 3
    expect(verdict.confidence[0]).toBeCloseTo(1 - 4 / 7, 15); // a tie: the second p equals the first
    expect(verdict.credibility[1]).toBeCloseTo(5 / 7, 15); // score 1
    expect(verdict.confidence[1]).toBeCloseTo(1 - 1 / 7, 15); // score 5: only 6
  });

  it('the reference form keeps the standard one when every calibration score is 0', () => {
    expect(Array.from(calibrationScores([0, 0], 'reference'))).toEqual([0, 0]);
  });
});

describe('separation metrics', () => {
  it('AUROC equals a direct pairwise count, ties counting one half', () => {
    const r = seeded(3);
    const pos = Array.from({ length: 60 }, () => Math.round(r() * 10) / 10);
    const neg = Array.from({ length: 45 }, () => Math.round(r() * 6) / 10);
    let count = 0;
    for (const p of pos) for (const n of neg) count += p > n ? 1 : p === n ? 0.5 : 0;
    expect(auroc(pos, neg)).toBeCloseTo(count / (pos.length * neg.length), 12);
    expect(auroc([1, 1], [0])).toBe(1);
    expect(auroc([0.5], [0.5])).toBe(0.5);
  });

  it('FPR at 95% TPR takes the highest threshold keeping 95% of the positives', () => {
    const pos = Array.from({ length: 100 }, (_, i) => i / 100); // 95% are >= 0.05
    expect(fprAtTpr(pos, [0.01, 0.04, 0.05, 0.5])).toBe(0.5);
    expect(fprAtTpr([1, 1, 1], [0.9, 1])).toBe(0.5);
  });

  it('histogram and reliability bins', () => {
    expect(histogram([0, 0.05, 0.1, 0.99, 1], 10)).toEqual([2, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
    const bins = reliability([0.05, 0.07, 0.95], [true, false, true], 10);
    expect(bins[0]).toMatchObject({ count: 2, accuracy: 0.5 });
    expect(bins[9]).toMatchObject({ count: 1, accuracy: 1 });
    expect(bins[5]!.accuracy).toBeNull();
  });

  it('k-NN purity counts neighbours with the same label', () => {
    const values = Float32Array.from([0, 0.1, 0.2, 10, 10.1, 10.2]);
    expect(knnPurity(values, 1, [0, 0, 0, 1, 1, 1], 2)).toBe(1);
    expect(knnPurity(values, 1, [0, 1, 0, 1, 0, 1], 1)).toBeLessThan(0.5);
  });
});

describe('outlier sets', () => {
  it('rotation by 90 degrees four times is the identity, and noise is in [0, 1]', () => {
    const shape: [number, number, number] = [5, 5, 2];
    const set = uniformNoise(3, shape, 9);
    expect(set.pixels.every((v) => v >= 0 && v < 1)).toBe(true);
    const once = rotated90(set, shape);
    expect(Array.from(once.pixels)).not.toEqual(Array.from(set.pixels));
    const four = rotated90(rotated90(rotated90(once, shape), shape), shape);
    expect(Array.from(four.pixels)).toEqual(Array.from(set.pixels));
    expect(inputErrorMessage(() => rotated90(set, [5, 4, 2]))).toMatch(/square/);
  });

  const fonts = fontFiles();
  needs(fonts.length > 0, `no fonts (${INSTALL_FONTS})`)('letters A-J: ten per font, MNIST-like, in [0, 1]', () => {
    const letters = renderedLetters([28, 28, 1], fonts.slice(0, 2));
    expect(letters.count).toBe(20);
    expect(Array.from(letters.labels.slice(0, 10))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (let i = 0; i < letters.count; i++) {
      const image = letters.pixels.subarray(i * 784, (i + 1) * 784);
      expect(image.every((v) => v >= 0 && v <= 1)).toBe(true);
      expect(image.reduce((s, v) => s + v, 0)).toBeGreaterThan(10); // ink
      // The border stays dark, as in MNIST (the glyph fits a 20x20 box).
      expect(image.subarray(0, 28 * 3).every((v) => v === 0)).toBe(true);
    }
    expect(inputErrorMessage(() => renderedLetters([32, 32, 3], fonts))).toMatch(/28x28x1/);
    expect(inputErrorMessage(() => renderedLetters([28, 28, 1], []))).toMatch(/no fonts found/);
  });
});

describe('on a small trained network', () => {
  const mnist = loadDataset('mnist');
  const shape = mnist.imageShape;
  let net: Network;

  beforeAll(async () => {
    await onBackend('wasm');
    // A user's model, trained with the library, seen as a Network (hidden layers exposed); seeded weights.
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const model = tf.sequential({
      layers: [
        tf.layers.flatten({ inputShape: shape, name: 'flat' }),
        tf.layers.dense({ units: 64, activation: 'relu', name: 'h1', kernelInitializer: init(1) }),
        tf.layers.dense({ units: 32, activation: 'relu', name: 'h2', kernelInitializer: init(2) }),
        tf.layers.dense({ units: 10, name: 'out', kernelInitializer: init(3) }),
      ],
    });
    const x = tf.tidy(() =>
      tf.div(
        tf.sub(
          tf.tensor4d(pixelsOf(mnist.train, shape, range(2000)).pixels, [2000, ...shape]),
          mnist.normalization.mean,
        ),
        mnist.normalization.std,
      ),
    );
    const y = tf.tensor1d(Int32Array.from(mnist.train.labels.subarray(0, 2000)), 'int32');
    await trainWithSnnl(model, { x, y }, { factor: 0, epochs: 4, batchSize: 64, seed: 3 });
    tf.dispose([x, y]);
    net = networkOf(model, ['h1', 'h2']);
  }, 120_000);

  function range(n: number, start = 0) {
    return Int32Array.from({ length: n }, (_, i) => start + i);
  }

  it('credibility of training points is high and of noise is low', () => {
    const layers = [0, 1, 2];
    const train = probe(net, pixelsOf(mnist.train, shape, range(2000)), shape, mnist.normalization, layers, 700);
    const model = new DeepKnn(
      layers.map((l) => ({ name: `l${l}`, chunks: train.features[l]! })) as LayerTrainFeatures[],
      Int32Array.from(mnist.train.labels.subarray(0, 2000)),
      10,
      { k: 25 },
    );
    const cal = pixelsOf(mnist.test, shape, range(300));
    model.calibrate(probe(net, cal, shape, mnist.normalization, layers).features.map(joinChunks), cal.labels);
    const mean = (a: Float64Array) => a.reduce((s, v) => s + v, 0) / a.length;
    const own = model.predict(
      probe(net, pixelsOf(mnist.train, shape, range(200)), shape, mnist.normalization, layers).features.map(joinChunks),
    );
    const noise = model.predict(
      probe(net, uniformNoise(200, shape, 4), shape, mnist.normalization, layers).features.map(joinChunks),
    );
    expect(mean(own.credibility)).toBeGreaterThan(0.5);
    expect(mean(noise.credibility)).toBeLessThan(0.2);
    expect(mean(own.credibility) - mean(noise.credibility)).toBeGreaterThan(0.4);
    const hits = own.prediction.filter((p, i) => p === mnist.train.labels[i]).length;
    expect(hits / 200).toBeGreaterThan(0.9);
  });

  it('conformal p-values give prediction sets that cover the test labels at 1 - epsilon (plain and Mondrian)', () => {
    const layers = [0, 1, 2];
    const trainFeatures = () =>
      probe(net, pixelsOf(mnist.train, shape, range(2000)), shape, mnist.normalization, layers, 700).features;
    const features = (indices: Int32Array) =>
      probe(net, pixelsOf(mnist.test, shape, indices), shape, mnist.normalization, layers).features.map(joinChunks);
    const calibration = range(1000);
    const evaluated = range(2000, 1000);
    const labelsOf = (indices: Int32Array) => Int32Array.from(indices, (i) => mnist.test.labels[i]!);
    for (const mondrian of [false, true]) {
      const train = trainFeatures();
      const model = new DeepKnn(
        layers.map((l) => ({ name: `l${l}`, chunks: train[l]! })) as LayerTrainFeatures[],
        Int32Array.from(mnist.train.labels.subarray(0, 2000)),
        10,
        { k: 25, pValues: 'finite', mondrian },
      );
      model.calibrate(features(calibration), labelsOf(calibration));
      const result = model.predict(features(evaluated));
      const summaries = model.sets(result, [0.05, 0.1, 0.2], labelsOf(evaluated));
      for (const s of summaries) {
        const perClass = mondrian ? 100 : 1000; // about 100 calibration images of each digit
        const tolerance = 3 * Math.sqrt(s.epsilon * (1 - s.epsilon) * (1 / perClass + 1 / 2000));
        expect(s.coverage, `eps ${s.epsilon}, mondrian ${mondrian}`).toBeGreaterThanOrEqual(1 - s.epsilon - tolerance);
        expect(s.meanSize).toBeLessThan(4);
      }
      // Larger error rates give smaller sets.
      expect(summaries[2]!.meanSize).toBeLessThan(summaries[0]!.meanSize);
    }
    const train = trainFeatures();
    const standard = new DeepKnn(
      layers.map((l) => ({ name: `l${l}`, chunks: train[l]! })) as LayerTrainFeatures[],
      Int32Array.from(mnist.train.labels.subarray(0, 2000)),
      10,
      { k: 25, mondrian: true },
    );
    expect(inputErrorMessage(() => standard.calibrate(features(range(50)), labelsOf(range(50))))).toBe(
      "mondrian: needs the conformal p-values: pValues 'finite' or 'smoothed'",
    );
  }, 120_000);

  it('FGSM moves each pixel by at most eps, stays in [0, 1], and lowers accuracy', () => {
    const set = pixelsOf(mnist.test, shape, range(300));
    const before = tf.memory().numTensors;
    const adv = fgsm(net, set, shape, mnist.normalization, 0.2);
    expect(tf.memory().numTensors).toBe(before);
    let moved = 0;
    for (let i = 0; i < set.pixels.length; i++) {
      const d = Math.abs(adv.pixels[i]! - set.pixels[i]!);
      expect(d).toBeLessThanOrEqual(0.2 + 1e-6);
      expect(adv.pixels[i]! >= 0 && adv.pixels[i]! <= 1).toBe(true);
      if (d > 0) moved++;
    }
    expect(moved).toBeGreaterThan(set.pixels.length / 4);
    const accuracy = (s: typeof set) => {
      const { probabilities } = probe(net, s, shape, mnist.normalization, []);
      let hits = 0;
      for (let i = 0; i < s.count; i++) {
        const row = Array.from(probabilities.subarray(i * 10, i * 10 + 10));
        if (row.indexOf(Math.max(...row)) === s.labels[i]) hits++;
      }
      return hits / s.count;
    };
    expect(accuracy(adv)).toBeLessThan(accuracy(set) - 0.3);
  });

  it('the library refuses mismatched rows and labels, and k above the training set', () => {
    const chunks = [{ rows: 3, dim: 2, values: new Float32Array(6) }];
    expect(inputErrorMessage(() => new DeepKnn([{ name: 'fc1', chunks }], Int32Array.from([0, 1]), 2))).toBe(
      'fc1: has 3 training rows but there are 2 labels',
    );
    expect(
      inputErrorMessage(() => new DeepKnn([{ name: 'fc1', chunks }], Int32Array.from([0, 1, 1]), 2, { k: 4 })),
    ).toBe('k: is 4, larger than the 3 training points');
  });
});

describe('snnl dknn', () => {
  const root = mkdtempSync(join(tmpdir(), 'snnl-dknn-'));
  const dir = join(root, 'run');
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, 'dknn', ...args], {
      encoding: 'utf8',
      env: { ...process.env, SNNL_BACKEND: 'wasm' },
    });

  beforeAll(async () => {
    await onBackend('wasm');
    const config = configFromFlags({ dataset: 'mnist', model: 'mlp', widths: '16', epochs: '1', trainSubset: '256' });
    createRun(dir, config, 'wasm');
    const net = buildNetwork('mlp', [28, 28, 1], 10, config.seed, { widths: [16] });
    const optimizer = new FusedAdamOptimizer(0.001);
    await saveRunState(dir, net, optimizer, { epoch: 1, history: [], multipliers: [1] });
  }, 60_000);

  it('runs end to end on a small run and writes its files', () => {
    const out = join(root, 'out');
    const result = cli(
      dir,
      '--train-subset',
      '200',
      '--k',
      '10',
      '--calibration',
      '100',
      '--outliers',
      '50',
      '--gradient-sample',
      '40',
      '--p-values',
      'finite',
      '--mondrian',
      '--epsilon',
      '0.05,0.2',
      '--out',
      out,
      '--json',
    );
    expect(result.status, result.stderr).toBe(0);
    const study = JSON.parse(result.stdout) as { sets: Array<{ name: string; count: number; auroc: unknown }> };
    expect(study.sets.map((s) => s.name)).toEqual(
      expect.arrayContaining(['clean', 'rotated', 'noise', 'fgsm-0.1', 'fgsm-0.25', 'pgd-0.1', 'pgd-0.25']),
    );
    // Every detector beside credibility, with bootstrap replicates, on the penultimate layer (fc1).
    const detected = study as unknown as {
      detectors: { penultimate: string; knnK: number; leftOut: object };
      pgd: { steps: number };
      calibrationCurve: Array<{ epsilon: number; coverage: number }>;
      sets: Array<{ name: string; auroc: Record<string, number> | null; aurocReplicates?: Record<string, number[]> }>;
    };
    expect(detected.detectors).toMatchObject({ penultimate: 'fc1', knnK: 50, leftOut: {} });
    expect(detected.pgd.steps).toBe(10);
    const noise = detected.sets.find((s) => s.name === 'noise')!;
    expect(Object.keys(noise.auroc!).sort()).toEqual(['credibility', 'energy', 'knn', 'mahalanobis', 'softmax']);
    for (const value of Object.values(noise.auroc!)) expect(value).toBeGreaterThanOrEqual(0);
    expect(noise.aurocReplicates!['energy']).toHaveLength(200);
    expect(detected.calibrationCurve).toHaveLength(20);
    expect(study.sets[0]!.count).toBe(9900);
    // Prediction sets: coverage of the labelled clean set, none for outliers; mean sizes and empty shares.
    const conformal = study as unknown as {
      mondrian: boolean;
      sets: Array<{ name: string; conformal: Array<{ epsilon: number; coverage: number | null; meanSize: number }> }>;
    };
    expect(conformal.mondrian).toBe(true);
    const clean = conformal.sets[0]!.conformal;
    expect(clean.map((c) => c.epsilon)).toEqual([0.05, 0.2]);
    expect(clean[0]!.coverage).toBeGreaterThan(0.8);
    expect(clean[1]!.meanSize).toBeLessThanOrEqual(clean[0]!.meanSize);
    expect(conformal.sets.find((s) => s.name === 'noise')!.conformal[0]!.coverage).toBeNull();
    // Where it came from: this checkout's commit, and the network's.
    const recorded = study as unknown as {
      provenance: { commit: string | null; dirty: boolean | null; backend: string };
      networkCommit: { commit: string | null };
    };
    expect(recorded.provenance.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(typeof recorded.provenance.dirty).toBe('boolean');
    expect(recorded.networkCommit.commit).toMatch(/^[0-9a-f]{40}$/);
    for (const file of [
      'dknn.json',
      'scores.png',
      'reliability.png',
      'calibration.png',
      'neighbors.png',
      'gradients.png',
    ])
      expect(existsSync(join(out, file)), file).toBe(true);
  }, 240_000);

  it.each([
    [['--train-subset', '50'], '--k: is 75, larger than the 50 training images'],
    [['--train-subset', '300'], '--train-subset: must be a whole number from 1 to 256, got 300'],
    [['--layers', 'fc9'], '--layers: the network has no layer "fc9"; its layers are fc1, logits'],
    [['--calibration', '10000'], /--calibration: must be a whole number from 1 to 9999/],
    [['--k', '0'], "--k: expected a whole number above 0, got '0'"],
    [['--eps', '2'], "--eps: expected numbers in (0, 1], got '2'"],
    [['--p-values', 'other'], /--p-values/],
    [['--mondrian'], '--mondrian: needs conformal p-values: add --p-values finite (or smoothed)'],
    [['--epsilon', '0.05,1'], "--epsilon: expected error rates in (0, 1), got '1'"],
    [['--pgd-steps', '-1'], "--pgd-steps: expected a whole number (0: no PGD), got '-1'"],
    [['--knn-k', '0'], "--knn-k: expected a whole number above 0, got '0'"],
    [
      ['--train-subset', '40', '--k', '10'],
      '--knn-k: must be a whole number from 1 to 40 (the training images), got 50',
    ],
    [['--replicates', 'x'], "--replicates: expected a whole number (0: none), got 'x'"],
  ])('exits 2 with one line for %j', (args, message) => {
    const result = cli(dir, ...args);
    expect(result.status).toBe(2);
    // One line (commander adds its usage hint to its own errors).
    const lines = result.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('(run with --help'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
  });

  it('exits 2 for a folder that is not a run', () => {
    const result = cli(root);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/snnl: /);
  });
});

describe('snnl dknn-features (.npy features from elsewhere)', () => {
  const root = mkdtempSync(join(tmpdir(), 'snnl-dknn-npy-'));
  const r = seeded(17);
  const gauss = () => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
  /** n points of 3 classes around separated centres, d values each. */
  const cluster = (n: number, d: number) => {
    const labels = Array.from({ length: n }, (_, i) => i % 3);
    const values = labels.flatMap((y) => Array.from({ length: d }, (_, j) => (j === y ? 6 : 0) + gauss()));
    return { values, labels };
  };
  const write = (
    dir: string,
    name: string,
    values: number[],
    shape: number[],
    dtype: 'float32' | 'int64' = 'float32',
  ) => writeFileSync(join(dir, name), encodeNpy(values, shape, dtype));
  const make = (dir: string) => {
    mkdirSync(dir, { recursive: true });
    for (const [split, n] of [
      ['train', 300],
      ['calibration', 60],
      ['test', 90],
    ] as const) {
      const a = cluster(n, 4);
      write(dir, `${split}.a.npy`, a.values, [n, 4]);
      // A second layer with rows of another shape (2 x 3), derived from the same points.
      write(
        dir,
        `${split}.b.npy`,
        a.values.flatMap((v, i) => (i % 4 < 3 ? [v, -v] : [])),
        [n, 2, 3],
      );
      write(dir, `${split}.labels.npy`, a.labels, [n], 'int64');
    }
  };
  const cli = (...args: string[]) =>
    spawnSync(process.execPath, [CLI, 'dknn-features', ...args], {
      encoding: 'utf8',
      env: { ...process.env, SNNL_BACKEND: 'cpu' },
    });

  it('reads the layers, judges the test rows and writes the arrays', () => {
    const dir = join(root, 'ok');
    make(dir);
    const out = join(root, 'ok-out');
    const result = cli(dir, '--k', '15', '--out', out, '--json');
    expect(result.status, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as { layers: string[]; accuracy: number; classes: number };
    expect(summary.layers).toEqual(['a', 'b']);
    expect(summary.classes).toBe(3);
    expect(summary.accuracy).toBeGreaterThan(0.95);
    const credibility = parseNpy(readFileSync(join(out, 'credibility.npy')), 'credibility.npy');
    expect(credibility.shape).toEqual([90]);
    expect(parseNpy(readFileSync(join(out, 'p-values.npy')), 'p').shape).toEqual([90, 3]);
  });

  it('with an outlier split and logits: every detector, its scores, AUROC and prediction sets', () => {
    const dir = join(root, 'ood');
    make(dir);
    for (const [split, n] of [
      ['train', 300],
      ['calibration', 60],
      ['test', 90],
    ] as const) {
      // Logits: the first three coordinates of layer a's points (their class's coordinate is large).
      const a = cluster(n, 3);
      write(dir, `${split}.logits.npy`, a.values, [n, 3]);
    }
    // Outliers: points far from every class, in every layer.
    const far = (n: number, d: number) => Array.from({ length: n * d }, () => -8 + gauss());
    write(dir, 'outlier.a.npy', far(40, 4), [40, 4]);
    write(dir, 'outlier.b.npy', far(40, 6), [40, 2, 3]);
    write(
      dir,
      'outlier.logits.npy',
      far(40, 3).map((v) => v / 8),
      [40, 3],
    );
    const out = join(root, 'ood-out');
    const result = cli(dir, '--k', '15', '--knn-k', '10', '--epsilon', '0.1,0.2', '--out', out, '--json');
    expect(result.status, result.stderr).toBe(0);
    const summary = JSON.parse(result.stdout) as {
      layers: string[];
      detectors: { penultimate: string; knnK: number; leftOut: object };
      outlier: { rows: number; auroc: Record<string, number>; fpr95: Record<string, number> };
      predictionSets: Array<{ epsilon: number; coverage: number; meanSize: number }>;
    };
    expect(summary.layers).toEqual(['a', 'b', 'logits']);
    expect(summary.detectors).toMatchObject({ penultimate: 'b', knnK: 10, leftOut: {} });
    expect(summary.outlier.rows).toBe(40);
    expect(Object.keys(summary.outlier.auroc).sort()).toEqual([
      'credibility',
      'energy',
      'knn',
      'mahalanobis',
      'softmax',
    ]);
    for (const d of ['credibility', 'mahalanobis', 'knn', 'energy'])
      expect(summary.outlier.auroc[d], d).toBeGreaterThan(0.9);
    expect(summary.predictionSets.map((c) => c.epsilon)).toEqual([0.1, 0.2]);
    expect(summary.predictionSets[0]!.coverage).toBeGreaterThan(0.75);
    for (const d of ['energy', 'mahalanobis', 'knn'])
      expect(parseNpy(readFileSync(join(out, `${d}.npy`)), d).shape).toEqual([90]);
    const bad = cli(dir, '--detector-layer', 'zz', '--out', out);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe('snnl: --detector-layer: no layer "zz"; the layers are a, b, logits');
  });

  it('exits 2 naming the file for rows that do not match labels, and for missing layers', () => {
    const dir = join(root, 'bad');
    make(dir);
    write(dir, 'calibration.labels.npy', [0, 1], [2], 'int64');
    let result = cli(dir, '--out', join(root, 'bad-out'));
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toMatch(
      /calibration\.labels\.npy: has 2 labels, but .*calibration\.a\.npy has 60 rows/,
    );
    unlinkSync(join(dir, 'test.b.npy'));
    result = cli(dir, '--out', join(root, 'bad-out'));
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toMatch(/test has layers a, train has a, b/);
    result = cli(join(root, 'nowhere'));
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toMatch(/is not a folder/);
  });
});

describe('t-SNE', () => {
  it('is seeded, and keeps separated clusters apart', () => {
    const r = seeded(5);
    const labels = Array.from({ length: 60 }, (_, i) => i % 3);
    const rows = labels.map((y) => Array.from({ length: 8 }, (_, j) => (j === y ? 10 : 0) + r()));
    const a = tsne2d(rows, 1, 10, 1000);
    expect(tsne2d(rows, 1, 10, 1000)).toEqual(a);
    expect(a.flat().every(Number.isFinite)).toBe(true);
    expect(knnPurity(Float32Array.from(a.flat()), 2, labels, 5)).toBeGreaterThan(0.95);
  });
});
