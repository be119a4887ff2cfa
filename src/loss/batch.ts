/** A batch as the loss sees it: the checked features, the labels, which rows count. */
import * as tf from '@tensorflow/tfjs-core';
import {
  resolveOptions,
  toFeatureMatrix,
  toLabelArray,
  type Labels,
  type ResolvedOptions,
  type SnnlOptions,
} from './options.js';

/**
 * The batch as the loss sees it: features, labels and which rows count. Everything but `x` is plain
 * data, so the gradient function can run after the tensors of the forward scope are gone.
 */
export interface PairBatch {
  x: tf.Tensor2D;
  labels: Int32Array;
  /** 1 for rows with a same-class partner, else 0. */
  hasPartner: Float32Array;
  /** 1 for rows counted in the reduction, else 0. */
  counted: Float32Array;
  rowsWithoutPartner: number;
  rowsCounted: number;
  options: ResolvedOptions;
}

export function makeBatch(features: tf.Tensor | tf.TensorLike, labels: Labels, options: SnnlOptions): PairBatch {
  const checkFinite = options.checkFinite ?? true;
  const x = toFeatureMatrix(features, checkFinite);
  const b = x.shape[0];
  const resolved = resolveOptions(options, b);
  const ids = toLabelArray(labels, b);
  const classSizes = new Map<number, number>();
  for (const id of ids) classSizes.set(id, (classSizes.get(id) ?? 0) + 1);
  const partner = Float32Array.from(ids, (id) => (classSizes.get(id)! > 1 ? 1 : 0));
  const rowsWithoutPartner = partner.reduce((n, p) => n + (1 - p), 0);
  const drops = resolved.formula.dropsRowsWithoutPartner;
  return {
    x,
    labels: ids,
    hasPartner: partner,
    counted: drops ? partner : new Float32Array(b).fill(1),
    rowsWithoutPartner,
    rowsCounted: drops ? b - rowsWithoutPartner : b,
    options: resolved,
  };
}
