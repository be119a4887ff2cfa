/**
 * Evaluation of a network on a data set: test accuracy (or, for the autoencoder, reconstruction
 * cross-entropy) over a whole split, and the entanglement of every hidden layer (SNNL at a given and at
 * the optimal temperature) on a fixed sample of test images.
 */
import * as tf from '@tensorflow/tfjs';
import { gatherBatch } from '../data/batches.js';
import type { Dataset, Normalization } from '../data/datasets.js';
import { snnl } from '../loss/snnl.js';
import { optimalTemperature } from '../loss/temperature.js';
import type { SnnlOptions } from '../loss/options.js';
import type { Network } from '../models/models.js';
import { permutation, stream } from '../random.js';
import { primaryLoss } from './step.js';

export interface LayerEntanglement {
  /** The temperature `loss` was measured at. */
  temperature: number;
  loss: number;
  optimalTemperature: number;
  optimalLoss: number;
}

/** The pixel normalization the network was trained with. */
export function normalizationFor(net: Network, dataset: Dataset): Normalization {
  // The autoencoder reconstructs pixels in [0, 1] with a sigmoid and BCE.
  return net.kind === 'autoencoder' ? { mean: 0, std: 1 } : dataset.normalization;
}

/** Hidden representations and final outputs of the examples at `indices`, in chunks (no gradient). */
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

export interface Score {
  /** Fraction classified correctly; null for the autoencoder. */
  accuracy: number | null;
  /** A classifier's mean cross-entropy over the split (the training objective's primary term). */
  loss?: number;
  /** The autoencoder's mean binary cross-entropy per pixel between the input and its reconstruction. */
  reconstruction?: number;
}

/** Test accuracy (or reconstruction BCE for the autoencoder) over a split, or the examples at `indices`. */
export function testScore(
  net: Network,
  dataset: Dataset,
  indices?: Int32Array,
  split: 'train' | 'test' = 'test',
): Score {
  const all = indices ?? Int32Array.from({ length: dataset[split].count }, (_, k) => k);
  let total = 0;
  let crossEntropy = 0;
  const norm = normalizationFor(net, dataset);
  for (let start = 0; start < all.length; start += 1000) {
    const part = all.subarray(start, Math.min(all.length, start + 1000));
    const batch = gatherBatch(dataset[split], dataset.imageShape, norm, part);
    const score = tf.tidy(() => {
      const out = (net.model.predict(batch.x, { batchSize: 1000 }) as tf.Tensor[]).at(-1)!;
      // The autoencoder's last output is the reconstruction's logits; primaryLoss is its mean BCE (as in
      // training), a classifier's its mean cross-entropy: each weighted by the chunk's size.
      const loss = tf.mul(primaryLoss(net, batch, out, out.shape[1] ?? 1), part.length);
      if (net.kind === 'autoencoder') return tf.stack([loss, tf.scalar(0)]);
      return tf.stack([loss, tf.sum(tf.cast(tf.equal(tf.argMax(out, 1), batch.y), 'float32'))]);
    });
    const [loss, correct] = score.dataSync();
    crossEntropy += loss!;
    total += correct!;
    tf.dispose([batch.x, batch.y, score]);
  }
  return net.kind === 'autoencoder'
    ? { accuracy: null, reconstruction: crossEntropy / all.length }
    : { accuracy: total / all.length, loss: crossEntropy / all.length };
}

/** SNNL of each representation in `outputs` (named `names`) with `labels`, at `temperature` and at the optimal one. */
export function layerEntanglement(
  outputs: tf.Tensor[],
  names: string[],
  labels: Int32Array,
  options: Pick<SnnlOptions, 'distance' | 'preset'>,
  temperature: number,
): Record<string, LayerEntanglement> {
  const snnlOptions: SnnlOptions = { distance: options.distance, preset: options.preset, checkFinite: false };
  const result: Record<string, LayerEntanglement> = {};
  names.forEach((name, k) => {
    const h = outputs[k]!;
    const fixed = tf.tidy(() => snnl(h, labels, { ...snnlOptions, temperature }).dataSync()[0]!);
    const optimal = optimalTemperature(h, labels, snnlOptions);
    result[name] = { temperature, loss: fixed, optimalTemperature: optimal.temperature, optimalLoss: optimal.loss };
  });
  return result;
}

/** SNNL of every hidden layer on the examples `sample` of the test split, at `temperature` and at the optimal one. */
export function entanglement(
  net: Network,
  dataset: Dataset,
  options: Pick<SnnlOptions, 'distance' | 'preset'>,
  temperature: number,
  sample: Int32Array,
): Record<string, LayerEntanglement> {
  const { outputs, labels } = forwardAll(net, dataset, 'test', sample);
  try {
    return layerEntanglement(outputs, net.hiddenLayers, labels, options, temperature);
  } finally {
    tf.dispose(outputs);
  }
}

/** The fixed test images a run measures entanglement on: a seeded choice of `size`. */
export function evaluationSample(dataset: Dataset, size: number, seed: number): Int32Array {
  return permutation(dataset.test.count, stream('evaluationSample', seed)).slice(0, Math.min(size, dataset.test.count));
}
