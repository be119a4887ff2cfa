/**
 * One training step: total = primary loss + factor x (sum or min over the chosen hidden layers of
 * weight x SNNL), one Adam update. Shared by the training loop and the benchmark.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import { snnl } from '../loss/snnl.js';
import { optimalTemperature } from '../loss/temperature.js';
import type { SnnlOptions } from '../loss/options.js';
import type { Network } from '../models/models.js';
import { snnlWithReference } from '../loss/reference.js';
import type { MemoryBank } from './samplers.js';

export interface StepSpec {
  classes: number;
  factor: number;
  /** This epoch's temperature, or 'optimal' for the reference code's one step per batch. */
  temperature: number | 'optimal';
  /** Hidden layers with an SNNL term: their index among the model's outputs and their weight. */
  layers: Array<{ index: number; weight: number }>;
  combine: 'sum' | 'min';
  snnl: SnnlOptions;
  /** Per-layer inverse-temperature multipliers of the one-step rule (updated in place). */
  multipliers: number[];
  /** T0 of the one-step rule, T = T0 / multiplier (default 1). */
  initialTemperature?: number;
  /** Temperatures relative to the batch: T x the typical distance between its rows in that layer. */
  relativeTemperature?: boolean;
  /** Per SNNL layer, a memory bank of recent rows: the term compares the batch with it too (then adds the batch). */
  banks?: MemoryBank[];
}

export interface StepResult {
  loss: number;
  primary: number;
  snnl: number;
  /** Per SNNL layer (in spec.layers' order): the largest |value| of its features, and their count per row. */
  ranges: Array<{ largest: number; features: number }>;
  /** Correctly classified examples of the batch (0 for the autoencoder). */
  correct: number;
}

/** Cross-entropy of the class scores, or for the autoencoder BCE between the input and its reconstruction logits. */
export function primaryLoss(net: Network, batch: Batch, last: tf.Tensor, classes: number): tf.Scalar {
  if (net.kind === 'autoencoder') return tf.losses.sigmoidCrossEntropy(tf.reshape(batch.x, last.shape), last);
  const truth = tf.oneHot(batch.y, classes);
  // A model ending in softmax: cross-entropy of its probabilities (clipped as Keras does).
  if (net.output === 'probabilities') return tf.mean(tf.metrics.categoricalCrossentropy(truth, last)) as tf.Scalar;
  return tf.losses.softmaxCrossEntropy(truth, last);
}

/**
 * The typical distance between two rows of `h` (a number, no gradient): the mean squared Euclidean
 * distance over all pairs, 2 x the sum of the features' variances; its square root for Euclidean; 1 for
 * cosine (already scale-free).
 */
export function distanceScale(h: tf.Tensor, distance: string): number {
  if (distance === 'cosine') return 1;
  const meanSquared = tf.tidy(() => {
    const flat = tf.reshape(h, [h.shape[0]!, -1]);
    return tf.mul(tf.sum(tf.moments(flat, 0).variance), 2);
  });
  const value = meanSquared.dataSync()[0]!;
  meanSquared.dispose();
  const scale = distance === 'euclidean' ? Math.sqrt(value) : value;
  return scale > 0 && Number.isFinite(scale) ? scale : 1;
}

export function trainStep(net: Network, optimizer: tf.Optimizer, batch: Batch, spec: StepSpec): StepResult {
  let parts: tf.Tensor | undefined;
  const banked: tf.Tensor[] = [];
  const cost = optimizer.minimize(() => {
    const outputs = net.model.apply(batch.x, { training: true }) as tf.Tensor[];
    const last = outputs.at(-1)!;
    const primary = net.primary
      ? net.primary.loss(outputs.slice(outputs.length - net.primary.outputs), batch.targets ?? [])
      : primaryLoss(net, batch, last, spec.classes);
    let snnlTerm: tf.Scalar = tf.scalar(0);
    const largest: tf.Tensor[] = [];
    if (spec.factor !== 0 && spec.layers.length > 0) {
      // The range every SNNL input must keep (checked by the loop, read with the other figures: no extra sync).
      for (const { index } of spec.layers) largest.push(tf.max(tf.abs(outputs[index]!)));
      const terms = spec.layers.map(({ index, weight }, l) => {
        const h = outputs[index]!;
        let temperature = spec.temperature;
        if (temperature === 'optimal') {
          // The reference code's rule: one gradient step on the inverse-temperature multiplier per batch.
          const step = optimalTemperature(h, batch.labels, {
            ...spec.snnl,
            method: 'one-step',
            multiplier: spec.multipliers[l]!,
            initialTemperature: spec.initialTemperature ?? 1,
          });
          spec.multipliers[l] = step.multiplier!;
          temperature = step.temperature;
        }
        if (spec.relativeTemperature) temperature *= distanceScale(h, spec.snnl.distance ?? 'squared-euclidean');
        const bank = spec.banks?.[l];
        if (bank) {
          const rows = tf.reshape(h, [h.shape[0]!, -1]) as tf.Tensor2D;
          banked.push(tf.keep(tf.clone(rows)));
          const against = bank.features;
          const term = snnlWithReference(rows, batch.labels, against, against ? bank.labels : null, {
            temperature,
            ...(spec.snnl.distance ? { distance: spec.snnl.distance } : {}),
          });
          return tf.mul(term, weight) as tf.Scalar;
        }
        return tf.mul(snnl(h, batch.labels, { ...spec.snnl, temperature }), weight) as tf.Scalar;
      });
      snnlTerm = (spec.combine === 'min' ? tf.min(tf.stack(terms)) : tf.addN(terms)) as tf.Scalar;
    }
    const correct =
      net.kind === 'classifier' ? tf.sum(tf.cast(tf.equal(tf.argMax(last, 1), batch.y), 'float32')) : tf.scalar(0);
    parts = tf.keep(tf.stack([primary, snnlTerm, correct, ...largest]));
    return tf.add(primary, tf.mul(snnlTerm, spec.factor)) as tf.Scalar;
  }, true);
  // The batch joins each bank after its step (the bank holds rows of earlier steps' networks).
  banked.forEach((rows, l) => {
    spec.banks![l]!.push(rows, batch.labels);
    rows.dispose();
  });
  const [primary, snnlValue, correct, ...maxima] = Array.from(parts!.dataSync());
  const loss = cost!.dataSync()[0]!;
  tf.dispose([cost!, parts!]);
  const ranges = maxima.map((m, l) => {
    const h = net.model.outputs[spec.layers[l]!.index]!;
    const features = h.shape.slice(1).reduce((a: number, n) => a * (n ?? 1), 1);
    return { largest: m, features };
  });
  return { loss, primary: primary!, snnl: snnlValue!, correct: correct!, ranges };
}
