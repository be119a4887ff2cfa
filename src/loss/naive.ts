/**
 * The loss written directly as the formula with tfjs ops and differentiated by autodiff, as the
 * reference implementations do. It serves as the baseline the closed-form gradient is checked and
 * benchmarked against; use `snnl` for real work.
 */
import * as tf from '@tensorflow/tfjs-core';
import { asColumn, asRow } from './shape.js';
import type { Labels, SnnlOptions } from './options.js';
import { makeBatch } from './batch.js';
import { REFERENCE_EPSILON } from './presets.js';
import { COSINE_NORM_FLOOR } from './distance.js';

function pairwiseDistances(x: tf.Tensor2D, distance: string): tf.Tensor2D {
  const b = x.shape[0];
  const offDiagonal = tf.sub(1, tf.eye(b));
  let d: tf.Tensor2D;
  if (distance === 'cosine') {
    const unit = tf.div(x, tf.maximum(tf.norm(x, 'euclidean', 1, true), COSINE_NORM_FLOOR)) as tf.Tensor2D;
    d = tf.sub(1, tf.matMul(unit, unit, false, true)) as tf.Tensor2D;
  } else {
    const sq = tf.sum(tf.square(x), 1);
    const squared = tf.relu(tf.sub(tf.add(asColumn(sq), asRow(sq)), tf.mul(tf.matMul(x, x, false, true), 2)));
    // sqrt's gradient at 0 is infinite; the diagonal is masked out below, so lift it off 0 first.
    d = (distance === 'euclidean' ? tf.sqrt(tf.add(squared, tf.eye(b))) : squared) as tf.Tensor2D;
  }
  return tf.mul(d, offDiagonal) as tf.Tensor2D;
}

/** SNNL by autodiff through the formula (mean reduction only). */
export function snnlNaive(features: tf.Tensor, labels: Labels, options: SnnlOptions = {}): tf.Tensor {
  return tf.tidy(() => {
    const batch = makeBatch(features, labels, { ...options, reduction: 'mean' });
    const { temperature, distance, formula } = batch.options;
    const b = batch.labels.length;
    const y = tf.tensor1d(batch.labels, 'int32');
    const same = tf.cast(tf.equal(asColumn(y), asRow(y)), 'float32');
    const d = pairwiseDistances(batch.x, distance.name);
    if (formula.dropsRowsWithoutPartner) {
      if (batch.rowsCounted === 0) return tf.scalar(0);
      const logits = tf.div(d, -temperature);
      const off = tf.sub(1, tf.eye(b));
      const partners = tf.mul(same, off);
      const masked = (m: tf.Tensor) => tf.add(logits, tf.mul(tf.sub(1, m), -1e30));
      const rows = tf.sub(tf.logSumExp(masked(off), 1), tf.logSumExp(masked(partners), 1));
      // Rows without a partner are left out of the mean.
      return tf.div(tf.sum(tf.mul(rows, tf.tensor1d(batch.hasPartner))), batch.rowsCounted);
    }
    const f = tf.sub(tf.exp(tf.div(d, -temperature)), tf.eye(b));
    const pick = tf.div(f, tf.add(tf.sum(f, 1, true), REFERENCE_EPSILON));
    return tf.mean(tf.neg(tf.log(tf.add(tf.sum(tf.mul(pick, same), 1), REFERENCE_EPSILON))));
  });
}
