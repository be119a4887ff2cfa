/**
 * The parts of the exact k-NN search (knn.ts) shared by its plain and pruned forms: the feature and result
 * types, the pruning defaults, and one step of the search (a chunk's distances, their k smallest, merged with
 * the best so far), fused in one kernel where the backend has it, else composed from tfjs ops.
 */
import * as tf from '@tensorflow/tfjs';
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
  /** Exact distances computed: count x training rows in the plain search, far fewer when pruned. */
  exactPairs: number;
}

export interface KnnOptions {
  k: number;
  /** Queries per product (default 2048). */
  queryChunk?: number;
  /** Called after each training chunk with the rows done so far (the pruned search counts its two passes). */
  onProgress?: (done: number, total: number) => void;
  /**
   * The pruned search: `auto` (default) where the backend has its kernels and the features are wide and
   * many enough to gain (PRUNE_DEFAULTS), true wherever the backend has its kernels, false never.
   */
  prune?: boolean | 'auto';
  /** Columns of the bounding basis (default 256; at most the feature width). */
  pruneRank?: number;
  /** The training chunks' bounding index, built before by buildKnnIndex (else built when pruning). */
  index?: KnnIndex;
}

/**
 * The bounding basis's default rank and the sample it is found from; the sizes from which `auto` prunes,
 * and the largest estimated share of rows let through by the bound (passShare) at which it still does.
 */
export const PRUNE_DEFAULTS = { rank: 256, sample: 4096, minDim: 1024, minRows: 8192, maxShare: 0.05 };

/** What the pruned search needs of the training rows, computed once (JavaScript memory, no tensors). */
export interface KnnIndex {
  dim: number;
  /** Columns p of the basis. */
  rank: number;
  /** [dim, p] orthonormal columns. */
  basis: Float32Array;
  /** Per training chunk: [rows, p + 2] bounding rows ([P x, residual norm low, high]). */
  bounds: Float32Array[];
  /** Per training chunk: [rows] squared norms, as the plain search computes them. */
  norms: Float32Array[];
  /** Rounding slack: 4 (d + p) 2^-24. */
  slack: number;
  /** Whether every norm is finite (a row with NaN or infinity makes the search fall back to the plain one). */
  finite: boolean;
}

export function totalRows(chunks: FeatureChunks): number {
  return chunks.reduce((n, c) => n + c.rows, 0);
}

/** The k nearest rows of `train` to each row of `queries`. */

export type Best = { distances: tf.Tensor2D; indices: tf.Tensor2D };

/** One search step by the backend's fused kernel (native). */
export function fusedStep(
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
export function composedStep(
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

/** Whether the backend in use has the pruned search's kernels. */
