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
}

export interface StepResult {
  loss: number;
  primary: number;
  snnl: number;
  /** Correctly classified examples of the batch (0 for the autoencoder). */
  correct: number;
}

/** Cross-entropy on the logits, or for the autoencoder BCE between the input and its reconstruction logits. */
export function primaryLoss(net: Network, batch: Batch, last: tf.Tensor, classes: number): tf.Scalar {
  return net.kind === 'autoencoder'
    ? tf.losses.sigmoidCrossEntropy(tf.reshape(batch.x, last.shape), last)
    : tf.losses.softmaxCrossEntropy(tf.oneHot(batch.y, classes), last);
}

export function trainStep(net: Network, optimizer: tf.Optimizer, batch: Batch, spec: StepSpec): StepResult {
  let parts: tf.Tensor | undefined;
  const cost = optimizer.minimize(() => {
    const outputs = net.model.apply(batch.x, { training: true }) as tf.Tensor[];
    const last = outputs.at(-1)!;
    const primary = primaryLoss(net, batch, last, spec.classes);
    let snnlTerm: tf.Scalar = tf.scalar(0);
    if (spec.factor !== 0 && spec.layers.length > 0) {
      const terms = spec.layers.map(({ index, weight }, l) => {
        const h = outputs[index]!;
        let temperature = spec.temperature;
        if (temperature === 'optimal') {
          // The reference code's rule: one gradient step on the inverse-temperature multiplier per batch.
          const step = optimalTemperature(h, batch.labels, {
            ...spec.snnl,
            method: 'one-step',
            multiplier: spec.multipliers[l]!,
          });
          spec.multipliers[l] = step.multiplier!;
          temperature = step.temperature;
        }
        return tf.mul(snnl(h, batch.labels, { ...spec.snnl, temperature }), weight) as tf.Scalar;
      });
      snnlTerm = (spec.combine === 'min' ? tf.min(tf.stack(terms)) : tf.addN(terms)) as tf.Scalar;
    }
    const correct =
      net.kind === 'classifier' ? tf.sum(tf.cast(tf.equal(tf.argMax(last, 1), batch.y), 'float32')) : tf.scalar(0);
    parts = tf.keep(tf.stack([primary, snnlTerm, correct]));
    return tf.add(primary, tf.mul(snnlTerm, spec.factor)) as tf.Scalar;
  }, true);
  const [primary, snnlValue, correct] = Array.from(parts!.dataSync());
  const loss = cost!.dataSync()[0]!;
  tf.dispose([cost!, parts!]);
  return { loss, primary: primary!, snnl: snnlValue!, correct: correct! };
}
