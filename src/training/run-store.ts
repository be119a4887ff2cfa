/**
 * A run folder: the store the CLI and the studies wrap around the training loop.
 *
 *   config.json     what defines the run (its TrainConfig), the backend, and the code's version and commit
 *   metrics.jsonl   one line of EpochMetrics per finished epoch
 *   checkpoint.bin  the weights, the optimizer's state and the history after the last finished epoch
 *   probes.jsonl    with --probe-layers: one line per probe of chosen layers, several per epoch
 *   summary.json    final and best figures, times (written when the run ends)
 *
 * Everything is written atomically (src/io/atomic.ts), so a run killed at any moment resumes exactly.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { loadDataset, type Dataset } from '../data/datasets.js';
import { withImageShape } from '../data/reshape.js';
import { withTrainSubset } from '../data/subset.js';
import { InputError } from '../errors.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { buildNetwork, type Network } from '../models/models.js';
import { codeVersion } from '../version.js';
import { loadCheckpoint, saveCheckpoint, type NamedTensor } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import type { EpochMetrics, LoopState } from './loop.js';

export interface RunFiles {
  dir: string;
  config: string;
  metrics: string;
  summary: string;
  checkpoint: string;
  probes: string;
}

export function runFiles(dir: string): RunFiles {
  return {
    dir,
    config: join(dir, 'config.json'),
    metrics: join(dir, 'metrics.jsonl'),
    summary: join(dir, 'summary.json'),
    checkpoint: join(dir, 'checkpoint.bin'),
    probes: join(dir, 'probes.jsonl'),
  };
}

export interface StoredConfig {
  config: TrainConfig;
  backend: string;
  versions: { snnl: string; tfjs: string; node: string };
  /** The git commit the run was created from (null outside a checkout; absent in older runs). */
  commit?: string | null;
  /** Whether that checkout had uncommitted changes to tracked files. */
  dirty?: boolean | null;
  createdAt: string;
}

interface CheckpointMeta {
  epoch: number;
  history: EpochMetrics[];
  optimizer: string[];
  /** Per-layer inverse-temperature multipliers of the one-step optimal-temperature rule. */
  multipliers: number[];
  /** Wall time of the finished epochs over every sitting (absent in older checkpoints). */
  wallSeconds?: number;
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

/** Makes the run folder and writes config.json (refusing a folder that holds another run). */
export function createRun(dir: string, config: TrainConfig, backend: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError('out', `${dir} is a file, not a folder`);
  const files = runFiles(dir);
  if (existsSync(files.config)) {
    throw new InputError('out', `${dir} already holds a run; resume it, or choose another folder`);
  }
  mkdirSync(dir, { recursive: true });
  const stored: StoredConfig = { config, ...provenance(backend) };
  writeJsonAtomic(files.config, stored);
}

/** What a stored result records about where it came from: backend, versions, commit, time. */
export function provenance(
  backend: string,
): Omit<StoredConfig, 'config'> & { commit: string | null; dirty: boolean | null } {
  const code = codeVersion();
  return {
    backend,
    versions: { snnl: code.version, tfjs: tf.version.tfjs, node: process.version },
    commit: code.commit,
    dirty: code.dirty,
    createdAt: new Date().toISOString(),
  };
}

/** The run's data set (cut to its training subset, if it has one) and its freshly initialized network. */
export function runParts(config: TrainConfig): { dataset: Dataset; net: Network } {
  const subset = withTrainSubset(
    loadDataset(config.dataset, config.dataDir, { pixels: config.pixels }),
    config.trainSubset,
    config.seed,
  );
  const dataset = config.inputShape ? withImageShape(subset, config.inputShape) : subset;
  if (config.testSubset !== undefined && config.testSubset > dataset.test.count) {
    throw new InputError(
      'testSubset',
      `${config.testSubset} test images asked for; ${config.dataset}'s test split has ${dataset.test.count}`,
    );
  }
  const net = buildNetwork(config.model, dataset.imageShape, dataset.classes, config.seed, config.modelOptions);
  return { dataset, net };
}

async function optimizerTensors(optimizer: tf.Optimizer): Promise<NamedTensor[]> {
  return (await optimizer.getWeights()).map(({ name, tensor }) => ({ name: `optimizer:${name}`, tensor }));
}

/** Saves the loop's state after an epoch: the checkpoint first, then metrics.jsonl (rebuilt from it on resume). */
export async function saveRunState(
  dir: string,
  net: Network,
  optimizer: tf.Optimizer,
  state: LoopState,
): Promise<void> {
  const files = runFiles(dir);
  const tensors: NamedTensor[] = [
    ...net.model.weights.map((w, k) => ({ name: `${k}:${w.name}`, tensor: w.read() })),
    ...(await optimizerTensors(optimizer)),
  ];
  saveCheckpoint<CheckpointMeta>(files.checkpoint, tensors, {
    epoch: state.epoch,
    history: state.history,
    optimizer: tensors.map((t) => t.name),
    multipliers: state.multipliers,
    ...(state.wallSeconds !== undefined ? { wallSeconds: state.wallSeconds } : {}),
  });
  // getWeights makes the iteration count for the occasion; the optimizer's own variables stay.
  tf.dispose(tensors.filter(({ tensor }) => !(tensor instanceof tf.Variable)).map(({ tensor }) => tensor));
  writeAtomic(
    files.metrics,
    state.history.map((m) => JSON.stringify(m)).join('\n') + (state.history.length ? '\n' : ''),
  );
}

/** Sets the network's weights from the run's checkpoint; returns its metadata and the optimizer's saved tensors. */
function restoreWeights(dir: string, net: Network, model: string) {
  const files = runFiles(dir);
  if (!existsSync(files.checkpoint)) return undefined;
  const { tensors, metadata } = loadCheckpoint<CheckpointMeta>(files.checkpoint);
  const weights = net.model.getWeights();
  const modelTensors = tensors.filter((t) => !t.name.startsWith('optimizer:'));
  if (modelTensors.length !== weights.length) {
    tf.dispose(tensors.map((t) => t.tensor));
    throw new InputError(
      files.checkpoint,
      `holds ${modelTensors.length} weights, the ${model} model has ${weights.length}`,
    );
  }
  net.model.setWeights(modelTensors.map((t) => t.tensor));
  tf.dispose(modelTensors.map((t) => t.tensor));
  return { metadata, optimizerSaved: tensors.filter((t) => t.name.startsWith('optimizer:')) };
}

/**
 * Restores a run's weights and its optimizer's state from its checkpoint; returns the loop's state, or
 * undefined where no epoch has finished yet.
 */
export async function restoreRunState(
  dir: string,
  net: Network,
  model: string,
  optimizer: tf.Optimizer,
  layers: number,
): Promise<LoopState | undefined> {
  const restored = restoreWeights(dir, net, model);
  if (restored === undefined) return undefined;
  const { metadata, optimizerSaved } = restored;
  try {
    if (optimizerSaved.length > 0) {
      await optimizer.setWeights(
        optimizerSaved.map((t) => ({ name: t.name.slice('optimizer:'.length), tensor: t.tensor })),
      );
    }
  } finally {
    tf.dispose(optimizerSaved.map((t) => t.tensor));
  }
  const multipliers = Array.from({ length: layers }, (_, k) => metadata.multipliers?.[k] ?? 1);
  // An older checkpoint has no wall time: its epochs count with their training time (a lower bound).
  const wallSeconds = metadata.wallSeconds ?? metadata.history.reduce((a, m) => a + m.seconds, 0);
  return { epoch: metadata.epoch, history: metadata.history, multipliers, wallSeconds };
}

/** Builds the run's network with the weights of its checkpoint (for evaluation and reports). */
export function loadTrainedNetwork(dir: string): {
  net: Network;
  dataset: Dataset;
  stored: StoredConfig;
  epoch: number;
} {
  const stored = readStoredConfig(dir);
  if (!existsSync(runFiles(dir).checkpoint)) throw new InputError(dir, 'has no checkpoint yet: no epoch has finished');
  const { dataset, net } = runParts(stored.config);
  const restored = restoreWeights(dir, net, stored.config.model)!;
  tf.dispose(restored.optimizerSaved.map((t) => t.tensor));
  return { net, dataset, stored, epoch: restored.metadata.epoch };
}

/** summary.json: the final and best accuracy, the final entanglement, and the times over every sitting. */
export function writeSummary(dir: string, history: EpochMetrics[], wallSeconds: number): void {
  const last = history.at(-1);
  if (!last) return;
  const accuracies = history.map((m) => m.test.accuracy).filter((a): a is number => a !== null);
  writeJsonAtomic(runFiles(dir).summary, {
    epochs: history.length,
    finalTestAccuracy: last.test.accuracy,
    bestTestAccuracy: accuracies.length > 0 ? Math.max(...accuracies) : null,
    finalEntanglement: last.entanglement,
    trainSeconds: history.reduce((a, m) => a + m.seconds, 0),
    wallSeconds,
  });
}
