/**
 * The library's training API on a user's own tf.LayersModel: sequential and functional models, layers by
 * name, data as tensors, a tf.data.Dataset or a function of the epoch, the model still a normal
 * tf.LayersModel afterwards (save / load round trip), no leaks, entangling well-posed by default, and
 * errors that name the argument.
 */
import * as tf from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { gatherBatch } from '../src/data/batches.js';
import { loadDataset } from '../src/data/datasets.js';
import { measureLayers, retrievalMetrics, snnl, trainWithSnnl } from '../src/index.js';
import { onBackend } from './helpers.js';

let images: tf.Tensor;
let labels: Int32Array;
let testImages: tf.Tensor;
let testLabels: Int32Array;

beforeAll(async () => {
  await onBackend('wasm');
  const mnist = loadDataset('mnist');
  const take = (split: 'train' | 'test', n: number) => {
    const batch = gatherBatch(
      mnist[split],
      mnist.imageShape,
      { mean: 0, std: 1 },
      Int32Array.from({ length: n }, (_, k) => k),
    );
    batch.y.dispose();
    return batch;
  };
  const train = take('train', 2048);
  const test = take('test', 500);
  [images, labels, testImages, testLabels] = [train.x, train.labels, test.x, test.labels];
});

afterAll(() => tf.dispose([images, testImages]));

/** The kind of model a TF.js user writes: Keras-style layers, a softmax output. */
function sequential(seed = 1): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.flatten({ inputShape: [28, 28, 1], name: 'flat' }),
      tf.layers.dense({
        units: 64,
        activation: 'relu',
        name: 'hidden1',
        kernelInitializer: tf.initializers.glorotUniform({ seed }),
      }),
      tf.layers.dense({
        units: 32,
        activation: 'relu',
        name: 'hidden2',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }),
      }),
      tf.layers.dense({
        units: 10,
        activation: 'softmax',
        name: 'out',
        kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 2 }),
      }),
    ],
  });
}

function accuracy(model: tf.LayersModel): number {
  return tf.tidy(() => {
    const predicted = tf.argMax(model.predict(testImages) as tf.Tensor, 1);
    return tf.mean(tf.cast(tf.equal(predicted, tf.tensor1d(testLabels, 'int32')), 'float32')).dataSync()[0]!;
  });
}

describe('trainWithSnnl', () => {
  it('trains a sequential model on tensors, which stays a normal tf.LayersModel (save and load)', async () => {
    const model = sequential();
    const before = accuracy(model);
    const tensors = tf.memory().numTensors;
    const epochs: number[] = [];
    const history = await trainWithSnnl(
      model,
      { x: images, y: tf.tensor1d(labels, 'int32') },
      {
        factor: 1,
        layers: ['hidden1', 'hidden2'],
        epochs: 2,
        batchSize: 64,
        validationData: { x: testImages, y: testLabels },
        onEpochEnd: (epoch) => void epochs.push(epoch),
      },
    );
    expect(epochs).toEqual([1, 2]);
    expect(history).toHaveLength(2);
    expect(Object.keys(history[1]!.entanglement)).toEqual(['hidden1', 'hidden2']);
    expect(history[1]!.test.accuracy).toBeCloseTo(accuracy(model), 5);
    expect(accuracy(model)).toBeGreaterThan(Math.max(before + 0.3, 0.8));
    // Nothing left behind but the labels tensor given as y (the caller's).
    expect(tf.memory().numTensors).toBe(tensors + 1);
    // Round trip through tfjs's own serialization: same predictions.
    let saved!: tf.io.ModelArtifacts;
    await model.save(
      tf.io.withSaveHandler(
        async (artifacts) => (
          (saved = artifacts),
          { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } }
        ),
      ),
    );
    const loaded = await tf.loadLayersModel(tf.io.fromMemory(saved));
    const a = model.predict(testImages) as tf.Tensor;
    const b = loaded.predict(testImages) as tf.Tensor;
    expect(tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]).toBe(0);
    tf.dispose([a, b]);
    loaded.dispose();
    model.dispose();
  }, 120_000);

  it("calls tfjs callbacks with model.fit's hooks and logs, returns a tf.History, and earlyStopping stops it", async () => {
    const model = sequential(5);
    const events: string[] = [];
    const batchLogs: Record<string, number>[] = [];
    const epochLogs: Record<string, number>[] = [];
    const tensors = tf.memory().numTensors;
    const history = await trainWithSnnl(
      model,
      { x: images, y: labels },
      {
        factor: 1,
        epochs: 6,
        batchSize: 256,
        validationData: { x: testImages, y: testLabels },
        callbacks: [
          {
            onTrainBegin: async () => void events.push('train begin'),
            onEpochBegin: async (epoch) => void events.push(`epoch ${epoch} begin`),
            onBatchBegin: async (batch) => void (batch === 0 && events.push('batch 0 begin')),
            onBatchEnd: async (_batch, logs) => void batchLogs.push({ ...logs } as Record<string, number>),
            onEpochEnd: async (epoch, logs) => {
              events.push(`epoch ${epoch} end`);
              epochLogs.push({ ...logs } as Record<string, number>);
            },
            onTrainEnd: async () => void events.push('train end'),
          },
          // No improvement of at least 10 in the validation cross-entropy: stop after the second epoch.
          tf.callbacks.earlyStopping({ patience: 1, minDelta: 10 }),
        ],
      },
    );
    expect(history).toHaveLength(2);
    expect(events).toEqual([
      'train begin',
      'epoch 0 begin',
      'batch 0 begin',
      'epoch 0 end',
      'epoch 1 begin',
      'batch 0 begin',
      'epoch 1 end',
      'train end',
    ]);
    expect(batchLogs).toHaveLength(16);
    expect(Object.keys(batchLogs[0]!).sort()).toEqual(['acc', 'batch', 'loss', 'primary', 'size', 'snnl']);
    expect(batchLogs[3]).toMatchObject({ batch: 3, size: 256 });
    const last = epochLogs[1]!;
    expect(Object.keys(last).sort()).toEqual(['acc', 'loss', 'primary', 'snnl', 'val_acc', 'val_loss']);
    expect(last['loss']).toBeCloseTo(history[1]!.train.loss, 6);
    expect(last['val_acc']).toBe(history[1]!.test.accuracy);
    // val_loss: the cross-entropy of the softmax output on the validation data, by hand.
    const byHand = tf.tidy(() => {
      const p = model.predict(testImages) as tf.Tensor;
      const picked = tf.sum(tf.mul(p, tf.oneHot(tf.tensor1d(testLabels, 'int32'), 10)), 1);
      return -tf.mean(tf.log(tf.clipByValue(picked, 1e-7, 1))).dataSync()[0]!;
    });
    expect(last['val_loss']).toBeCloseTo(byHand, 4);
    // The tf.History beside the records.
    expect(history.history.epoch).toEqual([0, 1]);
    expect(history.history.history['val_loss']).toEqual(epochLogs.map((l) => l['val_loss']));
    expect(model.stopTraining).toBe(true);
    expect(tf.memory().numTensors).toBe(tensors);
    model.dispose();
  }, 120_000);

  it('stops after the batch in which a callback sets model.stopTraining, recording that epoch', async () => {
    const model = sequential(7);
    const history = await trainWithSnnl(
      model,
      { x: images, y: labels },
      {
        factor: -1,
        epochs: 3,
        batchSize: 256,
        callbacks: new tf.CustomCallback({
          onBatchEnd: async (batch) => {
            if (batch === 2) model.stopTraining = true;
          },
        }),
      },
    );
    expect(history).toHaveLength(1);
    expect(history.history.epoch).toEqual([0]);
    await expect(
      trainWithSnnl(model, { x: images, y: labels }, { factor: 1, callbacks: [42 as never] }),
    ).rejects.toThrow('callbacks: item 0 is 42; expected a tf.Callback or {onEpochEnd, ...}');
    model.dispose();
  }, 60_000);

  it("refuses a layer whose values pass snnl()'s overflow bound, with snnl()'s words and the layer's name", async () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [3], units: 4, name: 'big', kernelInitializer: 'ones', useBias: false }),
        tf.layers.dense({ units: 2, name: 'out' }),
      ],
    });
    // Rows of 1e19: the 4 features reach 3e19, past the bound of 2.3e18 at 4 features.
    const x = tf.fill([8, 3], 1e19);
    const y = Int32Array.from({ length: 8 }, (_, i) => i % 2);
    await expect(trainWithSnnl(model, { x, y }, { factor: 1, layers: ['big'], batchSize: 8 })).rejects.toThrow(
      /^layer big \(epoch 1, batch 1\): values reach 3\.00e\+19: squared distances between rows would overflow float32 at 4 features/,
    );
    tf.dispose(x);
    model.dispose();
  });

  it('trains a functional model from a tf.data.Dataset and from a function of the epoch', async () => {
    const input = tf.input({ shape: [28, 28, 1] });
    const flat = tf.layers.flatten().apply(input) as tf.SymbolicTensor;
    const h = tf.layers.dense({ units: 48, activation: 'relu', name: 'features' }).apply(flat) as tf.SymbolicTensor;
    const logits = tf.layers.dense({ units: 10, name: 'logits' }).apply(h) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: logits });
    const dataset = tf.data
      .zip({ x: tf.data.array(tf.unstack(images)), y: tf.data.array(Array.from(labels)) })
      .batch(128)
      .map((batch) => batch as tf.TensorContainer) as unknown as tf.data.Dataset<{ x: tf.Tensor; y: tf.Tensor }>;
    const fromDataset = await trainWithSnnl(model, dataset, { factor: 1, epochs: 2 });
    expect(fromDataset.map((m) => m.epoch)).toEqual([1, 2]);
    // Default layers: every layer with weights but the output one.
    expect(fromDataset[0]!.train.snnl).toBeGreaterThan(0);
    function* batches() {
      for (let start = 0; start < 2048; start += 256) {
        yield { x: tf.slice(images, start, 256), y: labels.subarray(start, start + 256) };
      }
    }
    const fromFunction = await trainWithSnnl(model, () => batches(), { factor: 1, epochs: 1, temperature: 'optimal' });
    expect(fromFunction[0]!.temperature).toBe('optimal');
    expect(accuracy(model)).toBeGreaterThan(0.6);
    model.dispose();
  }, 120_000);

  it('entangles with the defaults: bounded form, temperature relative to the batch, finite loss', async () => {
    const trainOn = (model: tf.LayersModel, factor: number) =>
      trainWithSnnl(model, { x: images, y: labels }, { factor, epochs: 3, batchSize: 32 });
    const baseline = sequential(5);
    await trainOn(baseline, 0);
    const entangled = sequential(5);
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    const history = await trainOn(entangled, -1);
    expect(warn).not.toHaveBeenCalled();
    // T = 1 in units of the batch's mean squared distance; the bounded form: each layer's term at most 11.5.
    expect(history.map((m) => m.temperature)).toEqual([1, 1, 1]);
    for (const m of history) {
      expect(Number.isFinite(m.train.loss)).toBe(true);
      expect(m.train.snnl).toBeLessThanOrEqual(2 * 11.513);
    }
    // Entangled in every layer, and far above chance (the unbounded form ends at chance: 10%).
    const layers = { layers: ['hidden1', 'hidden2'] };
    const before = measureLayers(baseline, testImages, testLabels, layers);
    const after = measureLayers(entangled, testImages, testLabels, layers);
    for (const layer of ['hidden1', 'hidden2'])
      expect(after[layer]!.optimalLoss).toBeGreaterThan(before[layer]!.optimalLoss);
    expect(accuracy(entangled)).toBeGreaterThan(0.3);
    // The unbounded combination, chosen explicitly, is warned about once and still runs.
    const once = { factor: -1, preset: 'stable' as const, epochs: 1, batchSize: 512 };
    await trainWithSnnl(sequential(6), { x: images, y: labels }, once);
    await trainWithSnnl(sequential(6), { x: images, y: labels }, once);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0]![0])).toMatch(
      /^snnl: warning: factor -1 maximizes the stable form on squared-euclidean distance, which has no upper bound/,
    );
    warn.mockRestore();
    baseline.dispose();
    entangled.dispose();
  }, 180_000);

  it('refuses bad input naming the argument, before any work', async () => {
    const model = sequential();
    const fails = (data: unknown, options: object) => trainWithSnnl(model, data as never, { factor: 1, ...options });
    await expect(fails({ x: images, y: labels }, { layers: ['nope'] })).rejects.toThrow(
      /^layers: the model has no layer 'nope'; it has flat, hidden1/,
    );
    await expect(fails({ x: images, y: labels }, { layers: ['out'] })).rejects.toThrow(
      /^layers: 'out' is an output layer/,
    );
    await expect(fails({ x: images, y: labels.subarray(0, 10) }, {})).rejects.toThrow(
      'data.y: has 10 labels for 2048 examples',
    );
    await expect(fails({ x: images, y: labels }, { batchSize: 4096 })).rejects.toThrow(
      /^batchSize: 2048 examples make no batch of 4096/,
    );
    await expect(fails({ x: images, y: labels }, { temperature: -1 })).rejects.toThrow(
      /^temperature: expected a number above 0/,
    );
    await expect(fails({ x: images, y: labels }, { epochs: 0 })).rejects.toThrow(
      /^epochs: expected a whole number above 0/,
    );
    await expect(fails([1, 2], {})).rejects.toThrow(/^data: expected \{x, y\} tensors/);
    await expect(trainWithSnnl(model, { x: images, y: labels }, {} as never)).rejects.toThrow(
      /^factor: expected a number/,
    );
    const bigLabel = Int32Array.from(labels, (v) => v + 5);
    await expect(fails({ x: images, y: bigLabel }, {})).rejects.toThrow(/not below the model's 10 classes/);
    model.dispose();
  });
});

describe('measureLayers', () => {
  it("returns every layer's SNNL at a fixed and at the optimal temperature, equal to snnl() on its output", () => {
    const model = sequential(3);
    const tensors = tf.memory().numTensors;
    const layers = measureLayers(model, testImages, testLabels, { temperature: 50 });
    expect(Object.keys(layers)).toEqual(['flat', 'hidden1', 'hidden2', 'out']);
    const view = tf.model({ inputs: model.inputs, outputs: model.getLayer('hidden2').output as tf.SymbolicTensor });
    const h = view.predict(testImages) as tf.Tensor;
    const direct = tf.tidy(() => snnl(h, testLabels, { temperature: 50 }).dataSync()[0]!);
    expect(layers['hidden2']!.loss).toBeCloseTo(direct, 5);
    for (const e of Object.values(layers)) expect(e.optimalLoss).toBeLessThanOrEqual(e.loss + 1e-6);
    // The retrieval metrics beside SNNL, the same as retrievalMetrics on the layer's output.
    const values = h.dataSync() as Float32Array;
    const retrieval = retrievalMetrics({ rows: 500, dim: values.length / 500, values }, testLabels);
    expect(layers['hidden2']).toMatchObject(retrieval);
    expect(layers['hidden2']!.precisionAt1).toBeGreaterThan(0);
    expect(measureLayers(model, testImages, testLabels, { retrieval: false })['hidden2']!.mapAtR).toBeUndefined();
    h.dispose();
    expect(tf.memory().numTensors).toBe(tensors + 0);
    expect(() => measureLayers(model, testImages, testLabels.subarray(1))).toThrow(
      'y: has 499 labels for 500 examples',
    );
    model.dispose();
  });
});

describe("trainWithSnnl with a main loss of the user's own", () => {
  /** Rows of 8 features in 4 groups; the regression target is a smooth function of the features. */
  function regressionData(n: number, seed: number) {
    let s = seed;
    const random = () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s / 2 ** 31);
    const groups = Int32Array.from({ length: n }, (_, i) => i % 4);
    const x = Array.from({ length: n }, (_, i) =>
      Array.from({ length: 8 }, (_, j) => (j === groups[i]! ? 2 : 0) + random() - 0.5),
    );
    const y = x.map((row) => [row.reduce((a, v, j) => a + v * (j + 1), 0) / 8]);
    return { x: tf.tensor2d(x), y: tf.tensor2d(y), groups };
  }

  function regressor(outputs: 1 | 2 = 1): tf.LayersModel {
    const input = tf.input({ shape: [8] });
    const hidden = tf.layers
      .dense({
        units: 16,
        activation: 'tanh',
        name: 'hidden',
        kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }),
      })
      .apply(input) as tf.SymbolicTensor;
    const heads = Array.from(
      { length: outputs },
      (_, k) =>
        tf.layers
          .dense({ units: 1, name: `out${k + 1}`, kernelInitializer: tf.initializers.glorotUniform({ seed: 4 + k }) })
          .apply(hidden) as tf.SymbolicTensor,
    );
    return tf.model({ inputs: input, outputs: heads });
  }

  const mse = (model: tf.LayersModel, x: tf.Tensor, y: tf.Tensor) =>
    tf.tidy(() => tf.mean(tf.square(tf.sub(model.predict(x) as tf.Tensor, y))).dataSync()[0]!);

  it('trains a regression head on meanSquaredError with SNNL on its hidden layer, labels given apart', async () => {
    const train = regressionData(512, 1);
    const valid = regressionData(128, 2);
    const model = regressor();
    const before = mse(model, valid.x, valid.y);
    const tensors = tf.memory().numTensors;
    const epochLogs: Array<Record<string, number>> = [];
    const history = await trainWithSnnl(
      model,
      { x: train.x, y: train.y, labels: train.groups },
      {
        loss: 'meanSquaredError',
        factor: 0.1,
        epochs: 8,
        batchSize: 64,
        learningRate: 0.01,
        validationData: { x: valid.x, y: valid.y, labels: valid.groups },
        callbacks: { onEpochEnd: async (_e, logs) => void epochLogs.push({ ...logs } as Record<string, number>) },
      },
    );
    expect(tf.memory().numTensors).toBe(tensors);
    const after = mse(model, valid.x, valid.y);
    expect(after).toBeLessThan(before / 2);
    // The validation loss is the same MSE; no accuracy anywhere.
    expect(epochLogs.at(-1)!['val_loss']).toBeCloseTo(after, 4);
    expect(epochLogs.at(-1)!['acc']).toBeUndefined();
    expect(history.at(-1)!.train.accuracy).toBeNull();
    expect(history.at(-1)!.test.accuracy).toBeNull();
    expect(history.at(-1)!.entanglement['hidden']!.loss).toBeGreaterThan(0);
    // The primary part of the logged loss is the batch MSE: below the untrained network's.
    expect(history.at(-1)!.train.primary).toBeLessThan(before);
    tf.dispose([train.x, train.y, valid.x, valid.y]);
    model.dispose();
  }, 120_000);

  it('takes one loss per output (a list or by name), a function, or the compiled loss', async () => {
    const data = regressionData(256, 5);
    const twice = tf.mul(data.y, 2);
    const absolute = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.mean(tf.abs(tf.sub(yTrue, yPred)), -1);
    for (const loss of [['mse', absolute], { out2: absolute, out1: 'meanSquaredError' }] as const) {
      const model = regressor(2);
      const kernels = () => ['out1', 'out2'].map((n) => model.getLayer(n).getWeights()[0]!.dataSync()[0]!);
      const start = kernels();
      const records = await trainWithSnnl(
        model,
        { x: data.x, y: [data.y, twice], labels: data.groups },
        { loss: loss as never, factor: 0.1, epochs: 2, batchSize: 64 },
      );
      expect(Number.isFinite(records[0]!.train.primary)).toBe(true);
      // Both heads trained.
      kernels().forEach((w, k) => expect(w).not.toBe(start[k]));
      model.dispose();
    }
    // Compiled with meanSquaredError: float targets train (the default cross-entropy would refuse them).
    const compiled = regressor();
    compiled.compile({ optimizer: 'sgd', loss: 'meanSquaredError' });
    const before = mse(compiled, data.x, data.y);
    await trainWithSnnl(
      compiled,
      { x: data.x, y: data.y, labels: data.groups },
      { factor: 0, epochs: 4, batchSize: 32 },
    );
    expect(mse(compiled, data.x, data.y)).toBeLessThan(before);
    compiled.dispose();
    tf.dispose([data.x, data.y, twice]);
  }, 120_000);

  it('names the argument in every error', async () => {
    const data = regressionData(64, 9);
    const run = (model: tf.LayersModel, d: object, options: object) =>
      trainWithSnnl(model, d as never, { factor: 1, batchSize: 32, ...options }).then(
        () => 'no error',
        (e: Error) => e.message,
      );
    const one = regressor();
    expect(await run(one, { x: data.x, y: data.y, labels: data.groups }, { loss: 'hinge-ish' })).toMatch(
      /^loss: unknown loss "hinge-ish"; expected a function \(yTrue, yPred\) => loss or one of meanSquaredError, /,
    );
    expect(await run(one, { x: data.x, y: data.y }, { loss: 'mse' })).toBe(
      "data.labels: needed with this loss: the class ids SNNL groups by, one per example (y holds the loss's targets)",
    );
    const two = regressor(2);
    expect(await run(two, { x: data.x, y: [data.y, data.y], labels: data.groups }, { loss: ['mse'] })).toBe(
      "loss: has 1 losses for the model's 2 outputs",
    );
    expect(await run(two, { x: data.x, y: [data.y], labels: data.groups }, { loss: 'mse' })).toBe(
      'data.y: expected 2 tensors (one per output) of targets',
    );
    expect(await run(two, { x: data.x, y: [data.y, data.y], labels: data.groups }, { loss: { out3: 'mse' } })).toBe(
      'loss: names no output out3; the outputs are out1, out2',
    );
    expect(await run(two, { x: data.x, y: data.y, labels: data.groups }, {})).toBe(
      'model: expected one output (class scores), got 2; give a loss per output (options.loss)',
    );
    tf.dispose([data.x, data.y]);
    one.dispose();
    two.dispose();
  });
});
