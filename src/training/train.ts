/**
 * The training loop: total loss = primary loss (cross-entropy, or BCE reconstruction for the
 * autoencoder) + factor x (sum or min over hidden layers of SNNL), Adam, and after every epoch the test
 * accuracy on the real test split and the SNNL of every hidden layer on a fixed sample of test images,
 * at the run's temperature and at the optimal one. Runs are stored in a folder and resume exactly.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { epochOrder, gatherBatch, permutation, seededRandom } from '../data/batches.js';
import { loadDataset, type Dataset, type Normalization } from '../data/datasets.js';
import { InputError } from '../errors.js';
import { snnl } from '../loss/snnl.js';
import { annealedTemperature, optimalTemperature } from '../loss/temperature.js';
import { trainStep, type StepSpec } from './step.js';
import { FusedAdamOptimizer } from './optimizer.js';
import type { SnnlOptions } from '../loss/options.js';
import { buildNetwork, type Network } from '../models/models.js';
import { loadCheckpoint, saveCheckpoint, writeAtomic, type NamedTensor } from './checkpoint.js';
import { PT_SNNL_CNN_WEIGHTS, type TrainConfig } from './config.js';
import { ProgressBar } from './progress.js';

export interface LayerEntanglement {
  /** SNNL at the run's temperature for that epoch (1 where the run uses the optimal one). */
  temperature: number;
  loss: number;
  optimalTemperature: number;
  optimalLoss: number;
}

export interface EpochMetrics {
  epoch: number;
  temperature: number | 'optimal';
  train: { loss: number; primary: number; snnl: number; accuracy: number | null };
  test: { accuracy: number | null; reconstruction?: number };
  entanglement: Record<string, LayerEntanglement>;
  seconds: number;
  imagesPerSecond: number;
}

export interface RunFiles {
  dir: string;
  config: string;
  metrics: string;
  summary: string;
  checkpoint: string;
}

export function runFiles(dir: string): RunFiles {
  return {
    dir,
    config: join(dir, 'config.json'),
    metrics: join(dir, 'metrics.jsonl'),
    summary: join(dir, 'summary.json'),
    checkpoint: join(dir, 'checkpoint.bin'),
  };
}

export interface StoredConfig {
  config: TrainConfig;
  backend: string;
  versions: { snnl: string; tfjs: string; node: string };
  createdAt: string;
}

interface CheckpointMeta {
  epoch: number;
  history: EpochMetrics[];
  optimizer: string[];
  /** Per-layer inverse-temperature multipliers of the one-step optimal-temperature rule. */
  multipliers: number[];
}

/** The metrics of a run's finished epochs (none before the first ends). */
export function readHistory(dir: string): EpochMetrics[] {
  const path = runFiles(dir).metrics;
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as EpochMetrics);
}

/** Reads a run's config.json, with errors that say what is wrong. */
export function readStoredConfig(dir: string): StoredConfig {
  const files = runFiles(dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'no such run folder');
  if (!existsSync(files.config)) throw new InputError(dir, 'not a run folder (it has no config.json)');
  try {
    return JSON.parse(readFileSync(files.config, 'utf8')) as StoredConfig;
  } catch (error) {
    throw new InputError(files.config, `unreadable: ${(error as Error).message}`);
  }
}

/** The hidden layers that get an SNNL term, with their weights. */
export function snnlLayers(net: Network, config: TrainConfig): Array<{ name: string; index: number; weight: number }> {
  let names = net.hiddenLayers;
  if (config.layers === 'code') names = ['code'];
  else if (Array.isArray(config.layers)) {
    const unknown = config.layers.filter((l) => !net.hiddenLayers.includes(l));
    if (unknown.length > 0) {
      throw new InputError(
        '--layers',
        `unknown layer ${unknown.join(', ')}; ${net.name} has ${net.hiddenLayers.join(', ')}`,
      );
    }
    names = config.layers;
  }
  return names.map((name) => ({
    name,
    index: net.hiddenLayers.indexOf(name),
    weight: config.layerWeights === 'pt-snnl' ? (PT_SNNL_CNN_WEIGHTS[name] ?? 1) : 1,
  }));
}

export function temperatureAt(config: TrainConfig, epoch: number): number | 'optimal' {
  if (config.temperature === 'annealed') return annealedTemperature(epoch);
  return config.temperature;
}

function normalizationFor(net: Network, dataset: Dataset): Normalization {
  // The autoencoder reconstructs pixels in [0, 1] with a sigmoid and BCE.
  return net.kind === 'autoencoder' ? { mean: 0, std: 1 } : dataset.normalization;
}

/** Hidden representations and final outputs of `images`, in chunks (no gradient). */
function forwardAll(net: Network, dataset: Dataset, split: 'train' | 'test', indices: Int32Array, chunk = 500) {
  const norm = normalizationFor(net, dataset);
  const outputs: tf.Tensor[][] = [];
  const labels: number[] = [];
  for (let start = 0; start < indices.length; start += chunk) {
    const part = indices.subarray(start, Math.min(indices.length, start + chunk));
    const batch = gatherBatch(dataset[split], dataset.imageShape, norm, part);
    outputs.push(tf.tidy(() => net.model.predict(batch.x, { batchSize: chunk }) as tf.Tensor[]));
    labels.push(...batch.labels);
    tf.dispose([batch.x, batch.y]);
  }
  const joined = outputs[0]!.map((_, k) =>
    tf.concat(
      outputs.map((o) => o[k]!),
      0,
    ),
  );
  tf.dispose(outputs);
  return { outputs: joined, labels: Int32Array.from(labels) };
}

/** Test accuracy (or reconstruction BCE for the autoencoder) over the whole test split. */
export function testScore(net: Network, dataset: Dataset, indices?: Int32Array, split: 'train' | 'test' = 'test') {
  const all = indices ?? Int32Array.from({ length: dataset[split].count }, (_, k) => k);
  let correct = 0;
  let bce = 0;
  const norm = normalizationFor(net, dataset);
  for (let start = 0; start < all.length; start += 1000) {
    const part = all.subarray(start, Math.min(all.length, start + 1000));
    const batch = gatherBatch(dataset[split], dataset.imageShape, norm, part);
    const score = tf.tidy(() => {
      const out = (net.model.predict(batch.x, { batchSize: 1000 }) as tf.Tensor[]).at(-1)!;
      if (net.kind === 'autoencoder') {
        return tf.mul(
          tf.losses.sigmoidCrossEntropy(tf.reshape(batch.x, out.shape), tf.log(tf.div(out, tf.sub(1, out)))),
          part.length,
        );
      }
      return tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), batch.y), 'float32'));
    });
    const value = score.dataSync()[0]!;
    if (net.kind === 'autoencoder') bce += value;
    else correct += value;
    tf.dispose([batch.x, batch.y, score]);
  }
  return net.kind === 'autoencoder'
    ? { accuracy: null, reconstruction: bce / all.length }
    : { accuracy: correct / all.length };
}

/** SNNL of every hidden layer on the fixed evaluation sample, at `temperature` and at the optimal one. */
export function entanglement(
  net: Network,
  dataset: Dataset,
  config: TrainConfig,
  temperature: number,
  sample: Int32Array,
) {
  const { outputs, labels } = forwardAll(net, dataset, 'test', sample);
  const options: SnnlOptions = { distance: config.distance, preset: config.preset, checkFinite: false };
  const result: Record<string, LayerEntanglement> = {};
  net.hiddenLayers.forEach((name, k) => {
    const h = outputs[k]!;
    const fixed = tf.tidy(() => snnl(h, labels, { ...options, temperature }).dataSync()[0]!);
    const optimal = optimalTemperature(h, labels, options);
    result[name] = { temperature, loss: fixed, optimalTemperature: optimal.temperature, optimalLoss: optimal.loss };
  });
  tf.dispose(outputs);
  return result;
}

export function evaluationSample(dataset: Dataset, size: number, seed: number): Int32Array {
  return permutation(dataset.test.count, seededRandom(seed + 77)).slice(0, Math.min(size, dataset.test.count));
}

/** The data set with its training split cut to the run's subset (a seeded choice), if it has one. */
export function withTrainSubset(dataset: Dataset, config: TrainConfig): Dataset {
  const n = config.trainSubset;
  if (n === undefined || n >= dataset.train.count) return dataset;
  const chosen = permutation(dataset.train.count, seededRandom(config.seed + 31)).subarray(0, n);
  const size = dataset.imageShape.reduce((a, v) => a * v, 1);
  const images = new Uint8Array(n * size);
  const labels = new Uint8Array(n);
  chosen.forEach((from, to) => {
    images.set(dataset.train.images.subarray(from * size, (from + 1) * size), to * size);
    labels[to] = dataset.train.labels[from]!;
  });
  return { ...dataset, train: { images, labels, count: n } };
}

export interface TrainOptions {
  /** Print nothing (tests). */
  quiet?: boolean;
  /** Called after each epoch with its metrics (a report, a test). */
  onEpoch?: (metrics: EpochMetrics) => void;
  /** Stop at this batch (0-based) of this epoch (1-based), as a killed process would (tests of resuming). */
  stopAt?: { epoch: number; batch: number };
  log?: (line: string) => void;
}

async function optimizerTensors(optimizer: tf.Optimizer): Promise<NamedTensor[]> {
  return (await optimizer.getWeights()).map(({ name, tensor }) => ({ name: `optimizer:${name}`, tensor }));
}

/** Frees what getWeights made for the occasion (the iteration count), not the optimizer's own variables. */
function disposeTemporaries(tensors: NamedTensor[]): void {
  tf.dispose(tensors.filter(({ tensor }) => !(tensor instanceof tf.Variable)).map(({ tensor }) => tensor));
}

/**
 * Trains the run in `dir` from its config.json, resuming from its checkpoint when there is one.
 * Returns the metrics of every epoch.
 */
export async function train(dir: string, backend: string, options: TrainOptions = {}): Promise<EpochMetrics[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const files = runFiles(dir);
  const { config } = readStoredConfig(dir);
  const dataset = withTrainSubset(loadDataset(config.dataset, config.dataDir), config);
  const net = buildNetwork(config.model, dataset.imageShape, dataset.classes, config.seed, config.modelOptions);
  const layers = snnlLayers(net, config);
  const optimizer = new FusedAdamOptimizer(config.lr);
  const norm = normalizationFor(net, dataset);
  const sample = evaluationSample(dataset, config.evalSample, config.seed);
  let history: EpochMetrics[] = [];
  let firstEpoch = 0;
  const multipliers = layers.map(() => 1);
  const spec: StepSpec = {
    classes: dataset.classes,
    factor: config.factor,
    temperature: 1,
    layers,
    combine: config.combine,
    snnl: { distance: config.distance, preset: config.preset, checkFinite: false },
    multipliers,
  };

  if (existsSync(files.checkpoint)) {
    const { tensors, metadata } = loadCheckpoint<CheckpointMeta>(files.checkpoint);
    const weights = net.model.getWeights();
    const modelTensors = tensors.filter((t) => !t.name.startsWith('optimizer:'));
    if (modelTensors.length !== weights.length) {
      throw new InputError(
        files.checkpoint,
        `holds ${modelTensors.length} weights, the ${config.model} model has ${weights.length}`,
      );
    }
    net.model.setWeights(modelTensors.map((t) => t.tensor));
    const optimizerSaved = tensors.filter((t) => t.name.startsWith('optimizer:'));
    if (optimizerSaved.length > 0) {
      await optimizer.setWeights(
        optimizerSaved.map((t) => ({ name: t.name.slice('optimizer:'.length), tensor: t.tensor })),
      );
    }
    tf.dispose(tensors.map((t) => t.tensor));
    history = metadata.history;
    firstEpoch = metadata.epoch;
    metadata.multipliers?.forEach((m, k) => (multipliers[k] = m));
    log(`resuming ${dir} after epoch ${firstEpoch} of ${config.epochs}`);
  }

  for (let epoch = firstEpoch; epoch < config.epochs; epoch++) {
    const started = performance.now();
    const temperature = temperatureAt(config, epoch);
    const batches = epochOrder(dataset.train.count, { batchSize: config.batchSize, seed: config.seed, epoch });
    const bar = new ProgressBar(`epoch ${epoch + 1}/${config.epochs}`, batches.length, process.stderr, options.quiet);
    const sums = { loss: 0, primary: 0, snnl: 0, correct: 0, seen: 0 };
    for (let k = 0; k < batches.length; k++) {
      if (options.stopAt && options.stopAt.epoch === epoch + 1 && options.stopAt.batch === k) {
        net.model.dispose();
        optimizer.dispose();
        return history;
      }
      const batch = gatherBatch(dataset.train, dataset.imageShape, norm, batches[k]!);
      const { loss, primary, snnl: snnlValue, correct } = trainStep(net, optimizer, batch, { ...spec, temperature });
      tf.dispose([batch.x, batch.y]);
      if (!Number.isFinite(loss)) {
        throw new Error(`the loss became ${loss} at epoch ${epoch + 1}, batch ${k + 1}; lower --lr or |--factor|`);
      }
      const n = batches[k]!.length;
      sums.loss += loss * n;
      sums.primary += primary * n;
      sums.snnl += snnlValue * n;
      sums.correct += correct;
      sums.seen += n;
      const seconds = (performance.now() - started) / 1000;
      bar.update(k + 1, {
        loss: (sums.loss / sums.seen).toFixed(4),
        ...(net.kind === 'classifier' ? { acc: `${((100 * sums.correct) / sums.seen).toFixed(1)}%` } : {}),
        speed: `${(sums.seen / seconds).toFixed(0)} img/s`,
      });
    }
    const trainSeconds = (performance.now() - started) / 1000;
    const measureAt = temperature === 'optimal' ? 1 : temperature;
    const metrics: EpochMetrics = {
      epoch: epoch + 1,
      temperature,
      train: {
        loss: sums.loss / sums.seen,
        primary: sums.primary / sums.seen,
        snnl: sums.snnl / sums.seen,
        accuracy: net.kind === 'classifier' ? sums.correct / sums.seen : null,
      },
      test: testScore(net, dataset),
      entanglement: entanglement(net, dataset, config, measureAt, sample),
      seconds: trainSeconds,
      imagesPerSecond: sums.seen / trainSeconds,
    };
    history.push(metrics);
    // The checkpoint (weights, optimizer, history) first: the metrics file is rebuilt from it on resume.
    const tensors: NamedTensor[] = [
      ...net.model.weights.map((w, k) => ({ name: `${k}:${w.name}`, tensor: w.read() })),
      ...(await optimizerTensors(optimizer)),
    ];
    saveCheckpoint<CheckpointMeta>(files.checkpoint, tensors, {
      epoch: epoch + 1,
      history,
      optimizer: tensors.map((t) => t.name),
      multipliers,
    });
    disposeTemporaries(tensors);
    writeAtomic(files.metrics, history.map((m) => JSON.stringify(m)).join('\n') + '\n');
    options.onEpoch?.(metrics);
    if (!options.quiet) log(formatEpoch(metrics, backend));
  }
  net.model.dispose();
  optimizer.dispose();
  return history;
}

export function formatEpoch(m: EpochMetrics, backend: string): string {
  const accuracy =
    m.test.accuracy !== null
      ? `test accuracy ${(100 * m.test.accuracy).toFixed(2)}%`
      : `test BCE ${m.test.reconstruction?.toFixed(4)}`;
  const layers = Object.entries(m.entanglement)
    .map(
      ([name, e]) =>
        `${name} ${e.loss.toFixed(3)} (opt ${e.optimalLoss.toFixed(3)} @T=${e.optimalTemperature.toPrecision(3)})`,
    )
    .join(', ');
  return `epoch ${m.epoch}: ${accuracy}, ${m.imagesPerSecond.toFixed(0)} img/s on ${backend}; SNNL ${layers}`;
}

/** Builds the run's network with the weights of its checkpoint (for evaluation and reports). */
export function loadTrainedNetwork(dir: string): {
  net: Network;
  dataset: Dataset;
  stored: StoredConfig;
  epoch: number;
} {
  const stored = readStoredConfig(dir);
  const files = runFiles(dir);
  if (!existsSync(files.checkpoint)) throw new InputError(dir, 'has no checkpoint yet: no epoch has finished');
  const { config } = stored;
  const dataset = withTrainSubset(loadDataset(config.dataset, config.dataDir), config);
  const net = buildNetwork(config.model, dataset.imageShape, dataset.classes, config.seed, config.modelOptions);
  const { tensors, metadata } = loadCheckpoint<CheckpointMeta>(files.checkpoint);
  net.model.setWeights(tensors.filter((t) => !t.name.startsWith('optimizer:')).map((t) => t.tensor));
  tf.dispose(tensors.map((t) => t.tensor));
  return { net, dataset, stored, epoch: metadata.epoch };
}

/** Makes the run folder and writes config.json (refusing a folder that holds another run). */
export function createRun(dir: string, config: TrainConfig, backend: string, version: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError('--out', `${dir} is a file, not a folder`);
  const files = runFiles(dir);
  if (existsSync(files.config)) {
    throw new InputError(
      '--out',
      `${dir} already holds a run; resume it with snnl train --resume ${dir}, or choose another --out`,
    );
  }
  mkdirSync(dir, { recursive: true });
  const stored: StoredConfig = {
    config,
    backend,
    versions: { snnl: version, tfjs: tf.version.tfjs, node: process.version },
    createdAt: new Date().toISOString(),
  };
  writeAtomic(files.config, JSON.stringify(stored, null, 2) + '\n');
}

export function writeSummary(dir: string, history: EpochMetrics[], wallSeconds: number): void {
  const last = history.at(-1);
  if (!last) return;
  const accuracies = history.map((m) => m.test.accuracy).filter((a): a is number => a !== null);
  const summary = {
    epochs: history.length,
    finalTestAccuracy: last.test.accuracy,
    bestTestAccuracy: accuracies.length > 0 ? Math.max(...accuracies) : null,
    finalEntanglement: last.entanglement,
    trainSeconds: history.reduce((a, m) => a + m.seconds, 0),
    wallSeconds,
  };
  writeAtomic(runFiles(dir).summary, JSON.stringify(summary, null, 2) + '\n');
}
