/**
 * The Soft Nearest Neighbor Loss (Frosst, Papernot & Hinton, ICML 2019, https://arxiv.org/abs/1902.01889):
 *
 *     l_sn(X, y, T) = -1/b * sum_i log( sum_{j != i, y_j = y_i} exp(-D_ij / T) / sum_{k != i} exp(-D_ik / T) )
 *
 * the negative log probability that a neighbour drawn for x_i, with probability proportional to
 * exp(-D / T), has x_i's class. Low: the classes are disentangled; high: entangled.
 *
 * The gradient is in closed form (tf.customGrad): with H = dLoss/dD and A = H + H^T, one b x b x d
 * product forward (the Gram matrix) and one backward (A X), against three for autodiff through the
 * formula. Rows can be processed in blocks so that memory grows with b x blockSize, not b x b.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { PreparedDistance } from './distance.js';
import { asColumn, asRow, lazy, rowSlice } from './shape.js';
import type { FormulaBlock } from './formula.js';
import { fusedKernelsAvailable, fusedRows, fusedRowsGrad, type SnnlFusedAttrs } from './fused.js';
import type { Labels, SnnlOptions } from './options.js';
import { makeBatch, type PairBatch } from './batch.js';

export { makeBatch, type PairBatch };

export interface SnnlDetails {
  /** The loss: a scalar, or one value per example with reduction 'none' (0 for rows not counted). */
  loss: tf.Tensor;
  /** Examples whose class appears only once in the batch. */
  rowsWithoutPartner: number;
  /** Examples counted in the mean (all of them, except rows without a partner under the stable preset). */
  rowsCounted: number;
}

/** [start, end) ranges of the row blocks. */
export function blockRanges(b: number, blockSize: number): Array<[number, number]> {
  const ranges: Array<[number, number]> = [];
  for (let start = 0; start < b; start += blockSize) ranges.push([start, Math.min(b, start + blockSize)]);
  return ranges;
}

/**
 * The masks of rows [start, end): off-diagonal entries and same-class partners, as 0/1 factors and as
 * 0/-inf logit biases. Labels are plain data, so each is built by a loop in JavaScript, and only when a
 * formula or distance first reads it (inside the tf.tidy scope then current).
 */
export function makeBlock(batch: PairBatch, start: number, end: number): FormulaBlock {
  const { labels } = batch;
  const b = labels.length;
  const shape: [number, number] = [end - start, b];
  const mask = (diagonal: number, partner: number, other: number) =>
    lazy(() => {
      const values = new Float32Array(shape[0] * b);
      for (let i = start; i < end; i++) {
        const row = (i - start) * b;
        const y = labels[i];
        for (let j = 0; j < b; j++) values[row + j] = j === i ? diagonal : labels[j] === y ? partner : other;
      }
      return tf.tensor2d(values, shape);
    });
  const offDiagonal = mask(0, 1, 1);
  const offDiagonalBias = mask(-Infinity, 0, 0);
  const partners = mask(0, 1, 0);
  const partnersBias = mask(-Infinity, 0, -Infinity);
  const hasPartner = lazy(() => tf.tensor2d(batch.hasPartner.subarray(start, end), [end - start, 1]));
  return {
    start,
    end,
    get offDiagonal() {
      return offDiagonal();
    },
    get offDiagonalBias() {
      return offDiagonalBias();
    },
    get partners() {
      return partners();
    },
    get partnersBias() {
      return partnersBias();
    },
    get hasPartner() {
      return hasPartner();
    },
  };
}

/** Every mask of a block, built now (to keep them beyond the current scope). */
export function blockTensors(block: FormulaBlock): tf.Tensor[] {
  return [block.offDiagonal, block.offDiagonalBias, block.partners, block.partnersBias, block.hasPartner];
}

/**
 * Per-row loss and statistics of every block; with `keep` (one block only), also the distances and the
 * formula's cache for the gradient.
 */
export function forwardRows(
  batch: PairBatch,
  prepared: PreparedDistance,
  temperature: number,
  keep: boolean,
): { loss: tf.Tensor1D; stats: tf.Tensor1D[]; kept: tf.Tensor2D[] } {
  const { formula, blockSize } = batch.options;
  const parts = blockRanges(batch.labels.length, blockSize).map(([start, end]) =>
    tf.tidy(() => {
      const block = makeBlock(batch, start, end);
      const distances = prepared.rows(block);
      const { loss, stats, cache } = formula.rows(distances, temperature, block);
      return { loss, stats, kept: keep ? [distances, ...cache] : [] };
    }),
  );
  const join = <T extends tf.Tensor>(list: T[]): T => (list.length === 1 ? list[0]! : (tf.concat(list, 0) as T));
  return {
    loss: join(parts.map((p) => p.loss)),
    stats: parts[0]!.stats.map((_, k) => join(parts.map((p) => p.stats[k]!))),
    kept: parts.flatMap((p) => p.kept),
  };
}

/** The reduction of per-row losses, and dLoss/dl_i for an upstream gradient dy. */
function reduce(batch: PairBatch, rowLoss: tf.Tensor1D): tf.Tensor {
  const { reduction } = batch.options;
  if (reduction === 'none') return rowLoss;
  const total = tf.sum(rowLoss);
  if (reduction === 'sum' || batch.rowsCounted === 0) return total;
  return tf.div(total, batch.rowsCounted);
}

function rowWeights(batch: PairBatch, dy: tf.Tensor): tf.Tensor1D {
  const { reduction } = batch.options;
  const scale = reduction === 'mean' ? 1 / Math.max(1, batch.rowsCounted) : 1;
  return tf.mul(tf.mul(dy, tf.tensor1d(batch.counted)), scale) as tf.Tensor1D;
}

/**
 * dLoss/dX from per-row statistics and weights (the closed-form backward pass). With `kept` (one block:
 * distances and the formula's cache) H comes from the cache and A = H + H^T by a transpose; in blocks,
 * each block's rows of H and of H^T are recomputed from its distances.
 */
export function backwardRows(
  batch: PairBatch,
  prepared: PreparedDistance,
  temperature: number,
  stats: tf.Tensor1D[],
  weights: tf.Tensor1D,
  kept: tf.Tensor2D[],
): tf.Tensor2D {
  const { formula, blockSize } = batch.options;
  const b = batch.labels.length;
  if (kept.length > 0) {
    const [d, ...cache] = kept as [tf.Tensor2D, ...tf.Tensor2D[]];
    const block = makeBlock(batch, 0, b);
    const h = formula.gradient(d, temperature, block, stats.map(asColumn), asColumn(weights), cache);
    return prepared.backward(block, d, tf.add(h, tf.transpose(h)) as tf.Tensor2D);
  }
  const statsRow = stats.map(asRow);
  const weightsRow = asRow(weights);
  const parts = blockRanges(b, blockSize).map(([start, end]) =>
    tf.tidy(() => {
      const block = makeBlock(batch, start, end);
      const d = prepared.rows(block);
      const statsColumn = stats.map((s) => asColumn(rowSlice(s, start, end)));
      const h = formula.gradient(d, temperature, block, statsColumn, asColumn(rowSlice(weights, start, end)));
      const hTransposed = formula.gradient(d, temperature, block, statsRow, weightsRow);
      return prepared.backward(block, d, tf.add(h, hTransposed) as tf.Tensor2D);
    }),
  );
  return parts.length === 1 ? parts[0]! : (tf.concat(parts, 0) as tf.Tensor2D);
}

/** The loss through the backend's fused kernels (see fused.ts): one kernel forward, one backward. */
function fusedOnBatch(batch: PairBatch, x: tf.Tensor2D): tf.Tensor {
  const { distance, temperature, formula } = batch.options;
  const attrs: SnnlFusedAttrs = { distance: distance.name, temperature, epsilon: formula.fusedEpsilon };
  const labels = tf.tensor1d(batch.labels, 'int32');
  const lossOf = tf.customGrad((input, saveArg) => {
    const features = input as tf.Tensor2D;
    const [rowLoss, k] = fusedRows(features, labels, attrs);
    (saveArg as tf.GradSaveFunc)([features, k]);
    return {
      value: reduce(batch, rowLoss),
      gradFunc: (dy, [savedX, savedK]) =>
        fusedRowsGrad(savedX as tf.Tensor2D, savedK as tf.Tensor2D, rowWeights(batch, dy), attrs),
    };
  });
  return lossOf(x);
}

/** The loss on a prepared batch, with the closed-form gradient with respect to its features. */
export function snnlOnBatch(batch: PairBatch, x: tf.Tensor2D = batch.x): tf.Tensor {
  const { distance, temperature, blockSize } = batch.options;
  const singleBlock = blockSize >= batch.labels.length;
  if (singleBlock && fusedKernelsAvailable()) return fusedOnBatch(batch, x);
  const lossOf = tf.customGrad((input, saveArg) => {
    const features = input as tf.Tensor2D;
    const save = saveArg as tf.GradSaveFunc;
    const prepared = distance.prepare(features, 'rows');
    const { loss, stats, kept } = forwardRows(batch, prepared, temperature, singleBlock);
    save([features, ...stats, ...kept]);
    return {
      value: reduce(batch, loss),
      gradFunc: (dy, saved) => {
        const [savedX, ...rest] = saved;
        const savedStats = rest.slice(0, stats.length) as tf.Tensor1D[];
        const savedKept = rest.slice(stats.length) as tf.Tensor2D[];
        const again = distance.prepare(savedX as tf.Tensor2D, savedKept.length > 0 ? 'backward' : 'both');
        const weights = rowWeights(batch, dy);
        return backwardRows(batch, again, temperature, savedStats, weights, savedKept);
      },
    };
  });
  return lossOf(x);
}

/**
 * The Soft Nearest Neighbor Loss of `features` (rows are examples, any rank) with class `labels`.
 *
 * @example
 * const x = tf.randomNormal([128, 64]);
 * const y = tf.randomUniform([128], 0, 10, 'int32');
 * const loss = snnl(x, y, { temperature: 100, distance: 'cosine' }); // scalar tensor
 * const grad = tf.grad((f) => snnl(f, y))(x); // closed-form gradient
 */
export function snnl(features: tf.Tensor | tf.TensorLike, labels: Labels, options: SnnlOptions = {}): tf.Tensor {
  return snnlDetails(features, labels, options).loss;
}

/** Like `snnl`, with how many rows had no same-class partner and how many were counted. */
export function snnlDetails(
  features: tf.Tensor | tf.TensorLike,
  labels: Labels,
  options: SnnlOptions = {},
): SnnlDetails {
  let info = { rowsWithoutPartner: 0, rowsCounted: 0 };
  const loss = tf.tidy(() => {
    const batch = makeBatch(features, labels, options);
    info = { rowsWithoutPartner: batch.rowsWithoutPartner, rowsCounted: batch.rowsCounted };
    return snnlOnBatch(batch);
  });
  return { loss, ...info };
}
