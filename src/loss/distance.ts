/**
 * Pairwise distances between the rows of a batch, and their gradient.
 *
 * Each distance prepares per-batch quantities once, then gives the distances of a block of rows to all
 * rows (one b x B x d product) and turns dLoss/dD for that block into dLoss/dX for its rows (one more).
 * The diagonal D_ii is exactly 0 for every distance: a point is never its own neighbour, and rounding in
 * |x|^2 + |x|^2 - 2 x.x must not make it look like one.
 */
import * as tf from '@tensorflow/tfjs-core';
import { asColumn, asRow, rowSlice } from './shape.js';

export const DISTANCES = ['squared-euclidean', 'euclidean', 'cosine'] as const;
export type DistanceName = (typeof DISTANCES)[number];

/** A block of consecutive rows [start, end) of the batch, with its mask of off-diagonal entries. */
export type RowBlock = {
  start: number;
  end: number;
  /** 1 where column j is not the block row's own index, else 0 (float32, rows x b). */
  offDiagonal: tf.Tensor2D;
};

/** Distances prepared for one batch. */
export interface PreparedDistance {
  /** D for the block's rows against all rows: (end - start) x b, diagonal 0, never negative. */
  rows(block: RowBlock): tf.Tensor2D;
  /**
   * dLoss/dX for the block's rows, given the block's rows of the symmetric matrix A = H + H^T, where
   * H = dLoss/dD, and the block's distances D.
   */
  backward(block: RowBlock, distances: tf.Tensor2D, a: tf.Tensor2D): tf.Tensor2D;
}

/** What a prepared distance will be used for: the backward pass alone needs less. */
export type Use = 'rows' | 'backward' | 'both';

export interface Distance {
  readonly name: DistanceName;
  prepare(x: tf.Tensor2D, use?: Use): PreparedDistance;
}

const unprepared = (): never => {
  throw new Error('this prepared distance was made for the backward pass only');
};

/**
 * ||x_i - x_j||^2 through the Gram matrix. Rows are centred first: distances do not change, and the
 * cancellation in |x|^2 + |x|^2 - 2 x.x shrinks with the norms, so float32 stays accurate.
 */
function squaredEuclideanParts(x: tf.Tensor2D, use: Use) {
  const centred = tf.sub(x, tf.mean(x, 0, true)) as tf.Tensor2D;
  let rows: (block: RowBlock) => tf.Tensor2D = unprepared;
  if (use !== 'backward') {
    const squaredNorms = tf.sum(tf.square(centred), 1) as tf.Tensor1D;
    // Explicit transpose (a plain product is the fast path on every backend), with the -2 folded in.
    const transposedTimesMinus2 = tf.mul(tf.transpose(centred), -2) as tf.Tensor2D;
    rows = (block) => {
      const xr = rowSlice(centred, block.start, block.end);
      const sr = asColumn(rowSlice(squaredNorms, block.start, block.end));
      const d = tf.add(tf.add(tf.matMul(xr, transposedTimesMinus2), sr), asRow(squaredNorms));
      return tf.mul(tf.relu(d), block.offDiagonal) as tf.Tensor2D;
    };
  }
  // dLoss/dx_i = 2 * sum_j A_ij (x_i - x_j) = 2 * (rowsum(A) x_i - (A X)_i)
  const backward = (block: RowBlock, a: tf.Tensor2D): tf.Tensor2D => {
    const xr = rowSlice(centred, block.start, block.end);
    const rowSums = tf.sum(a, 1, true);
    return tf.mul(tf.sub(tf.mul(rowSums, xr), tf.matMul(a, centred)), 2) as tf.Tensor2D;
  };
  return { rows, backward };
}

const squaredEuclidean: Distance = {
  name: 'squared-euclidean',
  prepare(x, use = 'both') {
    const parts = squaredEuclideanParts(x, use);
    return { rows: parts.rows, backward: (block, _d, a) => parts.backward(block, a) };
  },
};

const euclidean: Distance = {
  name: 'euclidean',
  prepare(x, use = 'both') {
    const parts = squaredEuclideanParts(x, use);
    return {
      rows: (block) => tf.sqrt(parts.rows(block)) as tf.Tensor2D,
      // dD/dS = 1 / (2 D); where D = 0 (the diagonal, duplicate points) the subgradient 0 is used.
      backward(block, d, a) {
        const positive = tf.greater(d, 0);
        const safe = tf.where(positive, d, tf.onesLike(d));
        const scaled = tf.where(positive, tf.div(a, tf.mul(safe, 2)), tf.zerosLike(a)) as tf.Tensor2D;
        return parts.backward(block, scaled);
      },
    };
  },
};

/** Norms below this are clamped, as torch.nn.functional.normalize does. */
export const COSINE_NORM_FLOOR = 1e-12;

const cosine: Distance = {
  name: 'cosine',
  prepare(x, use = 'both') {
    // sqrt(sum(x^2)) rather than tf.norm, whose Pow kernel is slow on wasm.
    const norms = tf.maximum(tf.sqrt(tf.sum(tf.square(x), 1, true)), COSINE_NORM_FLOOR) as tf.Tensor2D;
    const unit = tf.div(x, norms) as tf.Tensor2D;
    const transposed = use === 'backward' ? undefined : (tf.transpose(unit) as tf.Tensor2D);
    return {
      rows(block) {
        if (transposed === undefined) return unprepared();
        const ur = rowSlice(unit, block.start, block.end);
        // Rounding makes 1 - u.u slightly negative for (near-)parallel rows; a negative distance would
        // make exp(-D / T) overflow at small T (NaN in the optimal-temperature search).
        return tf.mul(tf.relu(tf.sub(1, tf.matMul(ur, transposed))), block.offDiagonal) as tf.Tensor2D;
      },
      // D_ij = 1 - u_i.u_j, u = x / |x|: g = -A U, then dLoss/dx_i = (g_i - u_i (u_i . g_i)) / |x_i|.
      backward(block, _d, a) {
        const ur = rowSlice(unit, block.start, block.end);
        const g = tf.neg(tf.matMul(a, unit));
        const radial = tf.mul(ur, tf.sum(tf.mul(ur, g), 1, true));
        return tf.div(tf.sub(g, radial), rowSlice(norms, block.start, block.end)) as tf.Tensor2D;
      },
    };
  },
};

const byName: Record<DistanceName, Distance> = {
  'squared-euclidean': squaredEuclidean,
  euclidean,
  cosine,
};

export function getDistance(name: DistanceName): Distance {
  return byName[name];
}
