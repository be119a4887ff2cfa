/**
 * Exact k nearest neighbours by Euclidean distance, on the compute engine: squared distances of a chunk
 * of queries to a chunk of training points by one matrix product (|q|^2 + |t|^2 - 2 q.t), the k smallest
 * of each row by TopK, merged with the best found so far. Training points come in chunks (the outer loop:
 * each is uploaded once) and queries in chunks (the inner loop): the distances in memory at once are one
 * chunk by one chunk, never n_train x n_query (all queries' features and their k best stay on the backend
 * for the whole search). Among equal distances the lower training index comes first (TopK keeps the
 * lower position first, and every merge puts earlier chunks first).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { KNN_MERGE, type KnnMergeAttrs } from '../kernel-names.js';

/** Row-major features: `rows` rows of `dim` values, held in JavaScript memory (not on the backend). */
export interface FeatureMatrix {
  rows: number;
  dim: number;
  values: Float32Array;
}

/** Training features in row chunks (each a FeatureMatrix of the same `dim`), in index order. */
export type FeatureChunks = FeatureMatrix[];

export interface Neighbors {
  k: number;
  /** Number of queries. */
  count: number;
  /** [count, k] training indices, nearest first. */
  indices: Int32Array;
  /** [count, k] squared Euclidean distances (clamped at 0), nearest first. */
  distances: Float32Array;
}

export interface KnnOptions {
  k: number;
  /** Queries per product (default 2048). */
  queryChunk?: number;
  /** Called after each training chunk with the training rows done so far. */
  onProgress?: (done: number, total: number) => void;
}

export function totalRows(chunks: FeatureChunks): number {
  return chunks.reduce((n, c) => n + c.rows, 0);
}

/** The k nearest rows of `train` to each row of `queries`. */
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
    return { k, count: queries.rows, indices, distances };
  } finally {
    for (const part of parts) tf.dispose([part.x, part.norms]);
    for (const b of best) if (b) tf.dispose([b.distances, b.indices]);
  }
}

type Best = { distances: tf.Tensor2D; indices: tf.Tensor2D };

/** One search step by the backend's fused kernel (native). */
function fusedStep(
  q: tf.Tensor2D,
  qNorms: tf.Tensor1D,
  t: tf.Tensor2D,
  tNorms: tf.Tensor1D,
  previous: Best | undefined,
  k: number,
  offset: number,
): Best {
  const attrs: KnnMergeAttrs = { k, offset };
  const best = previous ?? {
    distances: tf.zeros([q.shape[0], 0]) as tf.Tensor2D,
    indices: tf.zeros([q.shape[0], 0], 'int32') as tf.Tensor2D,
  };
  const [distances, indices] = tf.engine().runKernel(
    KNN_MERGE,
    {
      queries: q,
      queryNorms: qNorms,
      train: t,
      trainNorms: tNorms,
      bestDistances: best.distances,
      bestIndices: best.indices,
    },
    attrs as unknown as tf.NamedAttrMap,
  ) as tf.Tensor2D[];
  if (previous === undefined) tf.dispose([best.distances, best.indices]);
  return { distances: distances!, indices: indices! };
}

/**
 * The same step composed of tfjs ops: distances by MatMul, the k smallest of the chunk by TopK (of the
 * negated distances), then TopK again over the old list and the chunk's, the old list first, so that
 * equal distances keep the lower training index.
 */
function composedStep(
  q: tf.Tensor2D,
  qNorms: tf.Tensor1D,
  t: tf.Tensor2D,
  tNorms: tf.Tensor1D,
  best: Best | undefined,
  k: number,
  offset: number,
): Best {
  return tf.tidy(() => {
    const products = tf.matMul(q, t, false, true);
    const squared = tf.relu(
      tf.sub(tf.add(tf.reshape(qNorms, [-1, 1]), tf.reshape(tNorms, [1, -1])), tf.mul(products, 2)),
    );
    const top = tf.topk(tf.neg(squared), Math.min(k, t.shape[0]));
    const chunkIndices = tf.add(top.indices, tf.scalar(offset, 'int32'));
    if (best === undefined)
      return { distances: tf.neg(top.values) as tf.Tensor2D, indices: chunkIndices as tf.Tensor2D };
    const values = tf.concat([tf.neg(best.distances), top.values], 1);
    const indices = tf.concat([best.indices, chunkIndices], 1);
    const width = values.shape[1]!;
    const kept = tf.topk(values, Math.min(k, width));
    // The kept positions as flat indices (wasm's GatherV2 with batchDims reads out of bounds).
    const rows = tf.reshape(tf.mul(tf.range(0, q.shape[0], 1, 'int32'), tf.scalar(width, 'int32')), [-1, 1]);
    const flat = tf.add(kept.indices, rows);
    return {
      distances: tf.neg(kept.values) as tf.Tensor2D,
      indices: tf.reshape(
        tf.gather(tf.reshape(indices, [-1]), flat),
        kept.indices.shape as [number, number],
      ) as tf.Tensor2D,
    };
  });
}
