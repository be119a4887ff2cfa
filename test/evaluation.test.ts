/**
 * Evaluation and the training loop's parts, checked against hand computations: the autoencoder's test
 * cross-entropy, the published table's protocol (the last shuffled training batch), pt-snnl's repeated
 * layer terms, and the loop driven directly with its parts (no run folder).
 */
import * as tf from '@tensorflow/tfjs';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { gatherBatch, type Batch } from '../src/data/batches.js';
import { loadDataset } from '../src/data/datasets.js';
import { withTrainSubset } from '../src/data/subset.js';
import { publishedProtocolAccuracy } from '../src/experiments/reproduce.js';
import { snnl } from '../src/loss/snnl.js';
import { buildNetwork } from '../src/models/models.js';
import { permutation, seededRandom, STREAMS } from '../src/random.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/training/config.js';
import { normalizationFor, testScore } from '../src/training/evaluate.js';
import { snnlLayers, trainLoop, type BatchSource } from '../src/training/loop.js';
import { FusedAdamOptimizer } from '../src/training/optimizer.js';
import { trainRun } from '../src/training/run.js';
import { createRun } from '../src/training/run-store.js';
import { trainStep } from '../src/training/step.js';
import { onBackend } from './helpers.js';

beforeAll(() => onBackend('wasm'));

const mnist = () => loadDataset('mnist');

function config(overrides: Partial<TrainConfig>): TrainConfig {
  return {
    ...TRAIN_DEFAULTS,
    dataset: 'mnist',
    model: 'mlp',
    modelOptions: { widths: [16, 16] },
    distance: 'squared-euclidean',
    epochs: 1,
    evalSample: 50,
    trainSubset: 512,
    ...overrides,
  };
}

describe("the autoencoder's test reconstruction", () => {
  it('is the mean binary cross-entropy per pixel of sigmoid(logits), as by hand in float64', () => {
    const dataset = withTrainSubset(mnist(), 256, 1);
    const net = buildNetwork('autoencoder', dataset.imageShape, 10, 3, { codeSize: 8 });
    const indices = Int32Array.from({ length: 30 }, (_, k) => k * 7);
    const score = testScore(net, dataset, indices);
    expect(score.accuracy).toBeNull();
    expect(Number.isFinite(score.reconstruction)).toBe(true);
    // By hand: p = sigmoid(logit), BCE = -(x log p + (1 - x) log(1 - p)) averaged over pixels and images.
    const batch = gatherBatch(dataset.test, dataset.imageShape, normalizationFor(net, dataset), indices);
    const logits = (net.model.predict(batch.x) as tf.Tensor[]).at(-1)!;
    const z = logits.dataSync();
    const x = batch.x.dataSync();
    let total = 0;
    for (let i = 0; i < z.length; i++) {
      const p = 1 / (1 + Math.exp(-z[i]!));
      total -= x[i]! * Math.log(p) + (1 - x[i]!) * Math.log(1 - p);
    }
    expect(score.reconstruction!).toBeCloseTo(total / z.length, 5);
    tf.dispose([batch.x, batch.y, logits]);
    net.model.dispose();
  });

  it('is a number in metrics.jsonl after training the autoencoder', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'snnl-ae-')), 'run');
    createRun(dir, config({ model: 'autoencoder', modelOptions: { codeSize: 8 }, layers: 'code', factor: 1 }), 'wasm');
    const history = await trainRun(dir, 'wasm', { quiet: true });
    expect(history[0]!.test.accuracy).toBeNull();
    expect(history[0]!.test.reconstruction).toBeGreaterThan(0);
    expect(history[0]!.test.reconstruction).toBeLessThan(1);
  }, 120_000);
});

describe("the published table's protocol", () => {
  it('is the accuracy on the last shuffled training batch as large as the test split, as by hand', async () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'snnl-protocol-')), 'run');
    const c = config({ trainSubset: 12_345, seed: 5 });
    createRun(dir, c, 'wasm');
    await trainRun(dir, 'wasm', { quiet: true });
    const got = publishedProtocolAccuracy(dir);
    // By hand: epoch 1's shuffle of the 12,345 training examples; its batches of 10,000 leave a last one of
    // 2,345 (the reference code kept partial batches); its accuracy with the trained network.
    const dataset = withTrainSubset(mnist(), 12_345, 5);
    const order = permutation(12_345, seededRandom(STREAMS.shuffle(5, 0)));
    const last = order.subarray(10_000);
    expect(last.length).toBe(2345);
    const { loadTrainedNetwork } = await import('../src/training/run-store.js');
    const { net } = loadTrainedNetwork(dir);
    const batch = gatherBatch(dataset.train, dataset.imageShape, dataset.normalization, last);
    const logits = (net.model.predict(batch.x) as tf.Tensor[]).at(-1)!;
    const rows = logits.arraySync() as number[][];
    const correct = rows.filter((row, i) => row.indexOf(Math.max(...row)) === batch.labels[i]).length;
    expect(got).toBeCloseTo(correct / 2345, 10);
    tf.dispose([batch.x, batch.y, logits]);
    net.model.dispose();
  }, 120_000);
});

describe("pt-snnl's layer weights", () => {
  it('make the SNNL term 2 conv1 + 3 conv2 + 2 fc1 + 2 fc2 + 2 fc3 on the cnn', () => {
    const dataset = mnist();
    const net = buildNetwork('cnn', dataset.imageShape, 10, 4, {});
    const layers = snnlLayers(net, { layers: 'all', layerWeights: 'pt-snnl' });
    expect(layers.map((l) => [l.name, l.weight])).toEqual([
      ['conv1', 2],
      ['conv2', 3],
      ['fc1', 2],
      ['fc2', 2],
      ['fc3', 2],
    ]);
    const indices = Int32Array.from({ length: 24 }, (_, k) => k);
    const batch = gatherBatch(dataset.train, dataset.imageShape, dataset.normalization, indices);
    const options = { distance: 'cosine' as const, preset: 'pt-snnl' as const, temperature: 100, checkFinite: false };
    const outputs = net.model.predict(batch.x) as tf.Tensor[];
    const byHand = layers.reduce(
      (sum, l) => sum + l.weight * snnl(outputs[l.index]!, batch.labels, options).dataSync()[0]!,
      0,
    );
    const plain = layers.reduce((sum, l) => sum + snnl(outputs[l.index]!, batch.labels, options).dataSync()[0]!, 0);
    const optimizer = new FusedAdamOptimizer(1e-3);
    const step = trainStep(net, optimizer, batch, {
      classes: 10,
      factor: 1,
      temperature: 100,
      layers,
      combine: 'sum',
      snnl: options,
      multipliers: layers.map(() => 1),
    });
    expect(step.snnl).toBeCloseTo(byHand, 4);
    expect(Math.abs(step.snnl - plain)).toBeGreaterThan(0.5);
    tf.dispose([batch.x, batch.y, ...outputs]);
    optimizer.dispose();
    net.model.dispose();
  });
});

describe('the training loop, driven with its parts', () => {
  it('trains any network from an async source of batches, calls back, and leaks nothing', async () => {
    const dataset = withTrainSubset(mnist(), 640, 2);
    const net = buildNetwork('mlp', dataset.imageShape, 10, 2, { widths: [24, 24] });
    const optimizer = new FusedAdamOptimizer(1e-3);
    const order = Int32Array.from({ length: 640 }, (_, k) => k);
    const data: BatchSource = {
      classes: 10,
      async *batches() {
        for (let start = 0; start < 640; start += 64)
          yield gatherBatch(
            dataset.train,
            dataset.imageShape,
            dataset.normalization,
            order.subarray(start, start + 64),
          );
      },
    };
    const seen: number[] = [];
    const before = tf.memory().numTensors;
    const history = await trainLoop({
      network: net,
      optimizer,
      data,
      settings: {
        epochs: 2,
        factor: 1,
        temperature: () => 10,
        layers: snnlLayers(net, { layers: ['fc2'], layerWeights: 'equal' }),
        combine: 'sum',
        snnl: { checkFinite: false },
      },
      callbacks: {
        onBatchEnd: (p) => void seen.push(p.done),
        evaluate: () => ({ test: testScore(net, dataset), entanglement: {} }),
      },
    });
    expect(history.map((m) => m.epoch)).toEqual([1, 2]);
    expect(seen).toHaveLength(20);
    expect(history[1]!.train.accuracy).toBeGreaterThan(history[0]!.train.accuracy! - 0.05);
    expect(history[1]!.test.accuracy).toBeGreaterThan(0.5);
    expect(history[0]!.train.snnl).toBeGreaterThan(0);
    // Adam's two moments per weight appear on the first step and stay; nothing else does.
    expect(tf.memory().numTensors - before).toBe(2 * net.model.weights.length);
    optimizer.dispose();
    net.model.dispose();
  }, 120_000);

  it('refuses an epoch without batches, naming the data', async () => {
    const dataset = mnist();
    const net = buildNetwork('mlp', dataset.imageShape, 10, 2, { widths: [8] });
    const optimizer = new FusedAdamOptimizer(1e-3);
    const empty: BatchSource = { classes: 10, batches: () => [] as Batch[] };
    await expect(
      trainLoop({
        network: net,
        optimizer,
        data: empty,
        settings: { epochs: 1, factor: 0, temperature: () => 1, layers: [], combine: 'sum', snnl: {} },
      }),
    ).rejects.toThrow('data: epoch 1 has no batches');
    optimizer.dispose();
    net.model.dispose();
  });
});
