/**
 * Exact k nearest neighbours by Euclidean distance, on the compute engine: squared distances of a chunk
 * of queries to a chunk of training points by one matrix product (|q|^2 + |t|^2 - 2 q.t), the k smallest
 * of each row by TopK, merged with the best found so far. Training points come in chunks (the outer loop:
 * each is uploaded once) and queries in chunks (the inner loop): the distances in memory at once are one
 * chunk by one chunk, never n_train x n_query (all queries' features and their k best stay on the backend
 * for the whole search). Among equal distances the lower training index comes first (TopK keeps the
 * lower position first, and every merge puts earlier chunks first).
 *
 * The pruned ("bounded") search, on backends with its kernels (native), finds the same neighbours with far
 * fewer distances: for wide features (a convolution's 12,544 values) almost every training row is ruled out
 * by a cheap lower bound. An orthonormal basis P of p columns (p = 256) spanning most of the training
 * features' variance is found by two rounds of subspace iteration on a sample of rows; every row x is
 * summarized by its p coordinates P x and the norm of its residual x - P'P x. By Pythagoras, |q - t|^2 =
 * |P q - P t|^2 + |residual(q) - residual(t)|^2 >= |P q - P t|^2 + (|res q| - |res t|)^2: a lower bound
 * computed by a product of width p instead of d. Then, per query:
 *   1. the k rows of smallest lower bound, and their exact distances: the largest is an upper bound of the
 *      k-th nearest distance;
 *   2. every training row whose lower bound is within that limit (or the k-th of the list found so far, if
 *      smaller) gets its exact distance and is merged as in the plain search; no other row can be among the
 *      k nearest.
 * Rounding: the bound is reduced by 4 (d + p) 2^-24 (|q|^2 + |t|^2) before it rules a row out (the
 * float32 worst case of the distance formula, far above the rounding seen in practice), and the residual
 * norms are intervals widened by as much; so the pruned search returns the neighbours the plain search
 * returns, up to the plain search's own float32 rounding of the distances (the exact distances are computed
 * by a different summation order, which can swap two rows whose distances differ by less than that
 * rounding, about 1e-7 (|q|^2 + |t|^2) or more: where the norms are large against the distances, as in the
 * test's low-rank data, the digits lost to cancellation go with it).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { KNN_MERGE } from '../kernel-names.js';
import {
  composedStep,
  fusedStep,
  PRUNE_DEFAULTS,
  totalRows,
  type Best,
  type FeatureChunks,
  type FeatureMatrix,
  type KnnOptions,
  type Neighbors,
} from './knn-core.js';
import { boundedSearch, buildKnnIndex, passShare, prunes } from './knn-pruned.js';

export {
  PRUNE_DEFAULTS,
  totalRows,
  type FeatureChunks,
  type FeatureMatrix,
  type KnnIndex,
  type KnnOptions,
  type Neighbors,
} from './knn-core.js';
export { buildKnnIndex, canPrune, passShare, prunes } from './knn-pruned.js';

export function nearestNeighbors(train: FeatureChunks, queries: FeatureMatrix, options: KnnOptions): Neighbors {
  const { k } = options;
  const n = totalRows(train);
  if (!Number.isInteger(k) || k < 1) throw new InputError('k', `must be a whole number of at least 1, got ${k}`);
  if (k > n) throw new InputError('k', `is ${k}, larger than the ${n} training points`);
  for (const chunk of train) {
    if (chunk.dim !== queries.dim)
      throw new InputError('features', `training rows have ${chunk.dim} values, queries ${queries.dim}`);
  }
  const queryChunk = Math.max(1, options.queryChunk ?? 2048);
  if (prunes(options, queries.dim, n)) {
    const index = options.index ?? buildKnnIndex(train, { rank: options.pruneRank });
    if (index.dim !== queries.dim)
      throw new InputError('index', `has ${index.dim} values per row, queries ${queries.dim}`);
    // `auto` prunes only where the bound rules out most rows (features without low-rank structure, such as
    // noise, would pay for exact distances one pair at a time, about ten times a product's cost per pair).
    const gains = options.prune === true || passShare(train, index, k) <= PRUNE_DEFAULTS.maxShare;
    if (index.finite && gains) {
      const found = boundedSearch(train, queries, index, k, queryChunk, options.onProgress);
      if (found) return found;
    }
  }
  const parts: Array<{ start: number; rows: number; x: tf.Tensor2D; norms: tf.Tensor1D }> = [];
  for (let start = 0; start < queries.rows; start += queryChunk) {
    const rows = Math.min(queryChunk, queries.rows - start);
    const x = tf.tensor2d(queries.values.subarray(start * queries.dim, (start + rows) * queries.dim), [
      rows,
      queries.dim,
    ]);
    parts.push({ start, rows, x, norms: tf.tidy(() => tf.sum(tf.square(x), 1) as tf.Tensor1D) });
  }
  // The best so far for each query part: squared distances (ascending) and training indices.
  const best: Array<Best | undefined> = parts.map(() => undefined);
  const step = tf.getKernel(KNN_MERGE, tf.getBackend()) ? fusedStep : composedStep;
  try {
    let offset = 0;
    for (const chunk of train) {
      if (chunk.rows === 0) continue;
      const t = tf.tensor2d(chunk.values.subarray(0, chunk.rows * chunk.dim), [chunk.rows, chunk.dim]);
      const tNorms = tf.tidy(() => tf.sum(tf.square(t), 1) as tf.Tensor1D);
      parts.forEach((part, p) => {
        const merged = step(part.x, part.norms, t, tNorms, best[p], k, offset);
        if (best[p]) tf.dispose([best[p]!.distances, best[p]!.indices]);
        best[p] = merged;
      });
      tf.dispose([t, tNorms]);
      offset += chunk.rows;
      options.onProgress?.(offset, n);
    }
    const indices = new Int32Array(queries.rows * k);
    const distances = new Float32Array(queries.rows * k);
    parts.forEach((part, p) => {
      indices.set(best[p]!.indices.dataSync(), part.start * k);
      distances.set(best[p]!.distances.dataSync(), part.start * k);
    });
    return { k, count: queries.rows, indices, distances, exactPairs: queries.rows * n };
  } finally {
    for (const part of parts) tf.dispose([part.x, part.norms]);
    for (const b of best) if (b) tf.dispose([b.distances, b.indices]);
  }
}
