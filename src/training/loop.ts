/**
 * The training loop, and nothing around it: it takes its parts (a network, an optimizer, batches, the
 * settings of the SNNL term, callbacks) and returns the history of its epochs. Each step minimizes
 *
 *     total = primary loss + factor x (sum, or min, over the chosen hidden layers of weight x SNNL)
 *
 * (src/training/step.ts). Where the parts come from (flags, a run folder, a user's tf.LayersModel) and
 * what happens between epochs (evaluation, checkpoints, progress) belong to the caller: the CLI's runs
 * (src/training/run.ts), the library's `trainWithSnnl`, and the studies all drive this one loop.
 */
import * as tf from '@tensorflow/tfjs';
import { disposeBatch, type Batch } from '../data/batches.js';
import { InputError } from '../errors.js';
import { annealedTemperature } from '../loss/temperature.js';
import { checkFeatureRange, type SnnlOptions } from '../loss/options.js';
import type { Network } from '../models/models.js';
import { PT_SNNL_CNN_WEIGHTS, type TemperatureRule, type TrainConfig } from './config.js';
import type { LayerEntanglement, Score } from './evaluate.js';
import { trainStep, type StepSpec } from './step.js';
import { MemoryBank } from './samplers.js';

export interface EpochMetrics {
  epoch: number;
  temperature: number | 'optimal';
  train: { loss: number; primary: number; snnl: number; accuracy: number | null };
  test: Score;
  entanglement: Record<string, LayerEntanglement>;
  seconds: number;
  imagesPerSecond: number;
}

/** What the SNNL term of each step is. */
export interface LoopSettings {
  epochs: number;
  /** a in total = primary + a x SNNL term; a < 0 entangles; 0 trains the primary loss alone. */
  factor: number;
  /** The temperature of epoch `epoch` (0-based), or 'optimal' for one step of the temperature per batch. */
  temperature: (epoch: number) => number | 'optimal';
  /** T0 of the one-step rule (T = T0 / t, t from 1): the paper's code starts at its temperature. Default 1. */
  initialTemperature?: number;
  /** Temperatures relative to each batch's typical distance in each layer (scale-free). */
  relativeTemperature?: boolean;
  /** Hidden layers with an SNNL term: their name, index among the network's outputs, and weight. */
  layers: Array<{ name: string; index: number; weight: number }>;
  combine: 'sum' | 'min';
  snnl: SnnlOptions;
  /**
   * Each SNNL layer's batch rows are compared with a memory bank of this many recent rows of that layer
   * too (snnlWithReference, the stable form); absent: the batch alone.
   */
  memoryBank?: number;
}

/** The batches of each epoch. The loop disposes every batch after its step. */
export interface BatchSource {
  classes: number;
  batches(epoch: number): Iterable<Batch> | AsyncIterable<Batch>;
  /** How many batches epoch `epoch` has, where known (progress). */
  batchCount?(epoch: number): number;
}

/** Where a loop starts: after `epoch` finished epochs, with their history (resuming), and the one-step multipliers. */
export interface LoopState {
  epoch: number;
  history: EpochMetrics[];
  /** Per-layer inverse-temperature multipliers of the one-step optimal-temperature rule (updated in place). */
  multipliers: number[];
  /** Wall time of the finished epochs, over every sitting (training, evaluation, probes); kept by the caller. */
  wallSeconds?: number;
}

export interface BatchProgress {
  epoch: number;
  /** Batches done in this epoch. */
  done: number;
  total: number | undefined;
  loss: number;
  /** Running training accuracy of the epoch; null for the autoencoder. */
  accuracy: number | null;
  imagesPerSecond: number;
  /** The last batch's own figures (tfjs's batch logs). */
  batch: { size: number; loss: number; primary: number; snnl: number; correct: number };
}

export interface LoopCallbacks {
  /** Before epoch `epoch` (1-based) and before batch `batch` (0-based) of it (tfjs's hooks). */
  onEpochBegin?(epoch: number): void | Promise<void>;
  onBatchBegin?(epoch: number, batch: number): void | Promise<void>;
  onBatchEnd?(progress: BatchProgress): void | Promise<void>;
  /** Test score and entanglement after an epoch (without it, the history records none). */
  evaluate?(epoch: number, temperature: number | 'optimal'): Pick<EpochMetrics, 'test' | 'entanglement'>;
  /** After each epoch, with its metrics and the state to save for resuming. */
  onEpochEnd?(metrics: EpochMetrics, state: LoopState): void | Promise<void>;
  /** True stops the loop before that batch (0-based) of that epoch (1-based), as a killed process would. */
  shouldStop?(epoch: number, batch: number): boolean;
  /**
   * Asked after every batch and epoch (tfjs's model.stopTraining): true ends the epoch after this batch,
   * with its evaluation and onEpochEnd over the batches done, and trains no further epoch.
   */
  stopRequested?(): boolean;
}

export interface LoopParts {
  network: Network;
  optimizer: tf.Optimizer;
  data: BatchSource;
  settings: LoopSettings;
  callbacks?: LoopCallbacks;
  state?: LoopState;
}

/** Trains for the epochs of `settings` not yet in `state`; returns the history of every epoch. */
export async function trainLoop(parts: LoopParts): Promise<EpochMetrics[]> {
  const { settings } = parts;
  const callbacks = parts.callbacks ?? {};
  const state: LoopState = parts.state ?? { epoch: 0, history: [], multipliers: settings.layers.map(() => 1) };
  const banks = settings.memoryBank ? settings.layers.map(() => new MemoryBank(settings.memoryBank!)) : undefined;
  try {
    return await epochs(parts, state, callbacks, banks);
  } finally {
    banks?.forEach((b) => b.dispose());
  }
}

async function epochs(
  parts: LoopParts,
  state: LoopState,
  callbacks: LoopCallbacks,
  banks: MemoryBank[] | undefined,
): Promise<EpochMetrics[]> {
  const { network, optimizer, data, settings } = parts;
  for (let epoch = state.epoch; epoch < settings.epochs; epoch++) {
    const started = performance.now();
    const temperature = settings.temperature(epoch);
    const total = data.batchCount?.(epoch);
    const step: StepSpec = {
      classes: data.classes,
      factor: settings.factor,
      temperature,
      layers: settings.layers,
      combine: settings.combine,
      snnl: settings.snnl,
      multipliers: state.multipliers,
      ...(settings.initialTemperature !== undefined ? { initialTemperature: settings.initialTemperature } : {}),
      ...(settings.relativeTemperature ? { relativeTemperature: true } : {}),
      ...(banks ? { banks } : {}),
    };
    const sums = { loss: 0, primary: 0, snnl: 0, correct: 0, seen: 0 };
    let k = 0;
    let stopping = false;
    await callbacks.onEpochBegin?.(epoch + 1);
    for await (const batch of data.batches(epoch)) {
      if (callbacks.shouldStop?.(epoch + 1, k)) {
        disposeBatch(batch);
        return state.history;
      }
      try {
        await callbacks.onBatchBegin?.(epoch + 1, k);
      } catch (error) {
        disposeBatch(batch);
        throw error;
      }
      let result;
      try {
        result = trainStep(network, optimizer, batch, step);
      } finally {
        disposeBatch(batch);
      }
      // What snnl() refuses, training refuses the same way, naming the layer.
      // (NaN features are left to the loss's own message below.)
      result.ranges.forEach((r, l) => {
        if (Number.isNaN(r.largest)) return;
        checkFeatureRange(
          r.largest,
          r.features,
          `layer ${settings.layers[l]!.name} (epoch ${epoch + 1}, batch ${k + 1})`,
        );
      });
      if (!Number.isFinite(result.loss)) {
        throw new Error(
          `the loss became ${result.loss} at epoch ${epoch + 1}, batch ${k + 1}; lower the learning rate or |factor|`,
        );
      }
      const n = batch.labels.length;
      sums.loss += result.loss * n;
      sums.primary += result.primary * n;
      sums.snnl += result.snnl * n;
      sums.correct += result.correct;
      sums.seen += n;
      k += 1;
      await callbacks.onBatchEnd?.({
        epoch: epoch + 1,
        done: k,
        total,
        loss: sums.loss / sums.seen,
        accuracy: network.kind === 'classifier' ? sums.correct / sums.seen : null,
        imagesPerSecond: sums.seen / ((performance.now() - started) / 1000),
        batch: { size: n, ...result },
      });
      if (callbacks.stopRequested?.()) {
        stopping = true;
        break;
      }
    }
    if (sums.seen === 0) throw new InputError('data', `epoch ${epoch + 1} has no batches`);
    const seconds = (performance.now() - started) / 1000;
    const measured = callbacks.evaluate?.(epoch, temperature) ?? { test: { accuracy: null }, entanglement: {} };
    const metrics: EpochMetrics = {
      epoch: epoch + 1,
      temperature,
      train: {
        loss: sums.loss / sums.seen,
        primary: sums.primary / sums.seen,
        snnl: sums.snnl / sums.seen,
        accuracy: network.kind === 'classifier' ? sums.correct / sums.seen : null,
      },
      ...measured,
      seconds,
      imagesPerSecond: sums.seen / seconds,
    };
    state.history.push(metrics);
    state.epoch = epoch + 1;
    await callbacks.onEpochEnd?.(metrics, state);
    if (stopping || callbacks.stopRequested?.()) break;
  }
  return state.history;
}

/** The temperature a config gives epoch `epoch` (0-based). */
export function temperatureAt(rule: TemperatureRule, epoch: number): number | 'optimal' {
  return rule === 'annealed' ? annealedTemperature(epoch) : rule;
}

/** The hidden layers of `net` that get an SNNL term under `config`, with their weights. */
export function snnlLayers(
  net: Network,
  config: Pick<TrainConfig, 'layers' | 'layerWeights'>,
): Array<{ name: string; index: number; weight: number }> {
  let names = net.hiddenLayers;
  if (config.layers === 'code') names = ['code'];
  else if (Array.isArray(config.layers)) {
    const unknown = config.layers.filter((l) => !net.hiddenLayers.includes(l));
    if (unknown.length > 0) {
      throw new InputError(
        'layers',
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

/** The loop's settings for a run's config on its network. */
export function loopSettings(config: TrainConfig, net: Network): LoopSettings {
  return {
    epochs: config.epochs,
    factor: config.factor,
    temperature: (epoch) => (config.optimizeTemperature ? 'optimal' : temperatureAt(config.temperature, epoch)),
    ...(config.optimizeTemperature && typeof config.temperature === 'number'
      ? { initialTemperature: config.temperature }
      : {}),
    ...(config.relativeTemperature ? { relativeTemperature: true } : {}),
    layers: snnlLayers(net, config),
    combine: config.combine,
    snnl: { distance: config.distance, preset: config.preset, checkFinite: false },
  };
}
