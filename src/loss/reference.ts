/**
 * SNNL of a batch against a reference set (a memory bank of recent embeddings, as metric-learning users
 * keep one): each batch row's neighbours are the other batch rows and every reference row,
 *
 *     l_i = -log( sum_{j in B u R, j != i, y_j = y_i} exp(-D_ij / T) / sum_{j in B u R, j != i} exp(-D_ij / T) )
 *
 * in the stable (log-sum-exp) form, averaged over the batch rows that have a same-class partner in B u R.
 * The reference rows are constants: the gradient reaches the batch only (through its rows as queries and as
 * neighbours of other batch rows). With an empty reference set it is snnl() with the stable preset.
 */
import * as tf from '@tensorflow/tfjs-core';
import { InputError } from '../errors.js';
import { checkOneOf } from '../errors.js';
import { DISTANCES, type DistanceName } from './distance.js';
import { checkTemperature } from './options.js';

export interface ReferenceOptions {
  temperature?: number;
  /** 'squared-euclidean' (default), 'euclidean' or 'cosine'. */
  distance?: DistanceName;
}

function ids(labels: ArrayLike<number> | tf.Tensor, rows: number, subject: string): Int32Array {
  const values = labels instanceof tf.Tensor ? labels.dataSync() : labels;
  if (values.length !== rows) throw new InputError(subject, `has ${values.length} labels for ${rows} rows`);
  const out = Int32Array.from(values as ArrayLike<number>);
  const bad = out.findIndex((v, i) => v !== (values as ArrayLike<number>)[i] || v < 0);
  if (bad >= 0)
    throw new InputError(subject, `label ${bad} is ${(values as ArrayLike<number>)[bad]}; expected a class id`);
  return out;
}

/** Distances [n, n + m] from the batch rows to the batch and reference rows (squared ones through the Gram matrix). */
function distances(h: tf.Tensor2D, all: tf.Tensor2D, distance: DistanceName): tf.Tensor2D {
  if (distance === 'cosine') {
    const unit = (x: tf.Tensor2D) => tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), 1e-12));
    return tf.sub(1, tf.matMul(unit(h), unit(all), false, true)) as tf.Tensor2D;
  }
  const squared = tf.relu(
    tf.add(
      tf.sub(tf.sum(tf.square(h), 1, true), tf.mul(tf.matMul(h, all, false, true), 2)),
      tf.reshape(tf.sum(tf.square(all), 1), [1, -1]),
    ),
  ) as tf.Tensor2D;
  // sqrt has an infinite derivative at 0: the self pairs (masked below) are kept away from it.
  return distance === 'euclidean' ? (tf.sqrt(tf.add(squared, 1e-12)) as tf.Tensor2D) : squared;
}

/** The loss (a scalar) of `h` [n, d] with `labels` against `reference` [m, d] with `referenceLabels`. */
export function snnlWithReference(
  h: tf.Tensor2D,
  labels: ArrayLike<number> | tf.Tensor,
  reference: tf.Tensor2D | null,
  referenceLabels: ArrayLike<number> | tf.Tensor | null,
  options: ReferenceOptions = {},
): tf.Scalar {
  const temperature = checkTemperature(options.temperature ?? 1);
  const distance = checkOneOf(options.distance ?? 'squared-euclidean', DISTANCES, 'distance');
  if (h.rank !== 2) throw new InputError('features', `expected [rows, features], got shape [${h.shape}]`);
  const n = h.shape[0];
  const m = reference?.shape[0] ?? 0;
  if (reference && reference.shape[1] !== h.shape[1])
    throw new InputError('reference', `has ${reference.shape[1]} features per row, the batch ${h.shape[1]}`);
  const batchLabels = ids(labels, n, 'labels');
  const refLabels = reference ? ids(referenceLabels ?? [], m, 'referenceLabels') : new Int32Array(0);
  const all = [...batchLabels, ...refLabels];
  // Masks as logit biases: -inf on the self pair; partners: same class. Rows without a partner: left out.
  const selfBias = new Float32Array(n * (n + m));
  const partnerBias = new Float32Array(n * (n + m)).fill(-Infinity);
  const counted = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n + m; j++) {
      if (j === i) {
        selfBias[i * (n + m) + j] = -Infinity;
        continue;
      }
      if (all[j] === batchLabels[i]) {
        partnerBias[i * (n + m) + j] = 0;
        counted[i] = 1;
      }
    }
  }
  // A row without a partner takes every neighbour as its "partners": a zero, finite term (no NaN gradient).
  for (let i = 0; i < n; i++)
    if (counted[i] === 0) partnerBias.set(selfBias.subarray(i * (n + m), (i + 1) * (n + m)), i * (n + m));
  const rows = counted.reduce((a, v) => a + v, 0);
  if (rows === 0) return tf.scalar(0);
  return tf.tidy(() => {
    // The reference is a constant here (not a function of the variables being trained): no gradient reaches it.
    const everything = reference ? (tf.concat([h, reference], 0) as tf.Tensor2D) : h;
    const logits = tf.add(tf.div(distances(h, everything, distance), -temperature), tf.tensor2d(selfBias, [n, n + m]));
    const same = tf.logSumExp(tf.add(logits, tf.tensor2d(partnerBias, [n, n + m])), 1);
    const total = tf.logSumExp(logits, 1);
    const perRow = tf.mul(tf.sub(total, same), tf.tensor1d(counted));
    return tf.div(tf.sum(perRow), rows) as tf.Scalar;
  });
}
