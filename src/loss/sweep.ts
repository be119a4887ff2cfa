/**
 * SNNL at many temperatures, without its gradient: the loss of a whole data set's embeddings, and what the
 * optimal-temperature search (temperature.ts) evaluates.
 *
 * What does not depend on T (the distances, the masks, each row's nearest neighbour) is computed once per
 * block of rows and used for every temperature asked, and memory is set by the block (rows x b), never by
 * b x b. On a backend that registers the SnnlSweep kernel (snnl's native backend) one kernel does it all
 * and also gives the first and second derivatives of the loss with respect to log T, from the moments of
 * the distances under the neighbour distributions (docs/reference.md):
 *
 *     log-sum-exp, beta = 1/T:  dl_i/dbeta = E_Q[D] - E_P[D],  d2l_i/dbeta2 = Var_P[D] - Var_Q[D]
 *
 * (P the neighbour distribution over all j != i, Q over same-class partners). Elsewhere the same loss is
 * composed from tfjs ops, with dLoss/dlog T = T dLoss/dT = -sum_ij H_ij D_ij from the closed-form H = dLoss/dD.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SNNL_DISTANCE_RANGE, SNNL_SWEEP, type KernelDistance, type SnnlSweepAttrs } from '../kernel-names.js';
import { makeBatch, type PairBatch } from './batch.js';
import { checkTemperature, type Labels, type SnnlOptions } from './options.js';
import type { FormulaBlock } from './formula.js';
import { asColumn, rowSlice } from './shape.js';
import { blockRanges, blockTensors, makeBlock } from './snnl.js';

/** The loss at one temperature, with derivatives with respect to u = log T. */
export interface SweepPoint {
  temperature: number;
  /** Mean over counted rows (the loss's 'mean' reduction). */
  loss: number;
  /** dLoss/dlog T. */
  slope: number;
  /** d2Loss/dlog T^2, where the backend's kernel gives it. */
  curvature?: number;
}

/** A batch ready to be evaluated at any temperature. */
export interface Sweep {
  /** Smallest positive and largest distance between distinct rows (computed when first read). */
  readonly range: { min: number; max: number };
  /** The loss at each temperature. */
  losses(temperatures: number[]): number[];
  /** The loss and its derivatives at each temperature (the curvature where the backend's kernel gives it). */
  points(temperatures: number[]): SweepPoint[];
  dispose(): void;
}

/** Whether the backend in use evaluates sweeps in one kernel. */
export function sweepKernelAvailable(): boolean {
  const backend = tf.getBackend();
  return tf.getKernel(SNNL_SWEEP, backend) !== undefined && tf.getKernel(SNNL_DISTANCE_RANGE, backend) !== undefined;
}

/** Row weights of the mean over counted rows. */
function rowWeights(batch: PairBatch): Float32Array {
  return batch.counted.map((c) => c / Math.max(1, batch.rowsCounted));
}

function kernelSweep(batch: PairBatch): Sweep {
  const attrs = {
    distance: batch.options.distance.name as KernelDistance,
    epsilon: batch.options.formula.fusedEpsilon,
    blockRows: batch.options.blockSize,
  };
  const x = batch.x;
  const labels = tf.tensor1d(batch.labels, 'int32');
  const weights = tf.tensor1d(rowWeights(batch));
  let range: { min: number; max: number } | undefined;
  const evaluate = (temperatures: number[], derivatives: boolean): SweepPoint[] => {
    if (temperatures.length === 0) return [];
    const sweepAttrs: SnnlSweepAttrs = { ...attrs, temperatures, derivatives };
    const out = tf.engine().runKernel(SNNL_SWEEP, { x, labels, weights }, sweepAttrs as never) as tf.Tensor;
    const values = out.dataSync();
    out.dispose();
    return temperatures.map((temperature, k) => ({
      temperature,
      loss: values[3 * k]!,
      slope: values[3 * k + 1]!,
      curvature: values[3 * k + 2]!,
    }));
  };
  return {
    // Only the search needs the range: one more pass over the distances, made when first read.
    get range() {
      if (range === undefined) {
        const t = tf.engine().runKernel(SNNL_DISTANCE_RANGE, { x }, attrs as never) as tf.Tensor;
        const [min, max] = t.dataSync();
        t.dispose();
        range = { min: min !== undefined && Number.isFinite(min) ? min : Infinity, max: max ?? 0 };
      }
      return range;
    },
    losses: (temperatures) => evaluate(temperatures, false).map((p) => p.loss),
    points: (temperatures) => evaluate(temperatures, true),
    dispose: () => tf.dispose([labels, weights]),
  };
}

/** Blocks whose distances and masks are kept between evaluations when all of them fit in this many entries. */
const KEEP_ENTRIES = 1 << 24;

function composedSweep(batch: PairBatch): Sweep {
  const { distance, formula } = batch.options;
  const b = batch.labels.length;
  const ranges = blockRanges(b, batch.options.blockSize);
  const weights = tf.tensor1d(rowWeights(batch));
  // Small batches keep each block's distances and masks; large ones recompute them per evaluation.
  const kept =
    b * b <= KEEP_ENTRIES
      ? tf.tidy(() => {
          const prepared = distance.prepare(batch.x, 'rows');
          return ranges.map(([start, end]) => {
            const block = makeBlock(batch, start, end);
            blockTensors(block).forEach((t) => tf.keep(t));
            return { block, d: tf.keep(prepared.rows(block)) };
          });
        })
      : undefined;
  const eachBlock = (visit: (d: tf.Tensor2D, block: FormulaBlock) => void) =>
    tf.tidy(() => {
      const prepared = kept ? undefined : distance.prepare(batch.x, 'rows');
      ranges.forEach(([start, end], k) =>
        tf.tidy(() => {
          if (kept) return visit(kept[k]!.d, kept[k]!.block);
          const block = makeBlock(batch, start, end);
          visit(prepared!.rows(block), block);
        }),
      );
    });
  let range: { min: number; max: number } | undefined;
  const rangeOf = () => {
    const found = { min: Infinity, max: 0 };
    eachBlock((d, block) => {
      const positive = tf.logicalAnd(tf.greater(d, 0), tf.cast(block.offDiagonal, 'bool'));
      found.min = Math.min(found.min, tf.min(tf.where(positive, d, tf.fill(d.shape, Infinity))).dataSync()[0]!);
      found.max = Math.max(found.max, tf.max(d).dataSync()[0]!);
    });
    return found;
  };
  const evaluate = (temperatures: number[], withSlope: boolean): SweepPoint[] => {
    const loss = new Float64Array(temperatures.length);
    const slope = new Float64Array(temperatures.length);
    eachBlock((d, block) => {
      const w = rowSlice(weights, block.start, block.end);
      temperatures.forEach((temperature, t) =>
        tf.tidy(() => {
          const rows = formula.rows(d, temperature, block);
          loss[t]! += tf.sum(tf.mul(rows.loss, w)).dataSync()[0]!;
          if (!withSlope) return;
          const stats = rows.stats.map(asColumn);
          const h = formula.gradient(d, temperature, block, stats, asColumn(w), rows.cache);
          // dLoss/dlog T = T dLoss/dT = -sum_ij H_ij D_ij.
          slope[t]! -= tf.sum(tf.mul(h, d)).dataSync()[0]!;
        }),
      );
    });
    return temperatures.map((temperature, t) => ({ temperature, loss: loss[t]!, slope: slope[t]! }));
  };
  return {
    // Only the search needs the range: one more pass over the distances, made when first read.
    get range() {
      range ??= rangeOf();
      return range;
    },
    losses: (temperatures) => evaluate(temperatures, false).map((p) => p.loss),
    points: (temperatures) => evaluate(temperatures, true),
    dispose() {
      weights.dispose();
      if (kept) tf.dispose(kept.flatMap((k) => [k.d, ...blockTensors(k.block)]));
    },
  };
}

/** A sweep over a prepared batch: the backend's kernel where it has one, else composed from tfjs ops. */
export function makeSweep(batch: PairBatch): Sweep {
  return sweepKernelAvailable() ? kernelSweep(batch) : composedSweep(batch);
}

export interface SnnlAtTemperatures {
  temperatures: number[];
  /** The loss (mean over counted rows) at each temperature. */
  losses: number[];
  rowsWithoutPartner: number;
  rowsCounted: number;
}

/**
 * The loss of `features` with `labels` at each of `temperatures`, without its gradient: for measuring a
 * whole data set (memory grows with b x blockSize; the default block is chosen from b, see SnnlOptions).
 *
 * @example
 * const { losses } = snnlAtTemperatures(embeddings, labels, [1, 10, 100], { distance: 'cosine' });
 */
export function snnlAtTemperatures(
  features: tf.Tensor | tf.TensorLike,
  labels: Labels,
  temperatures: number[],
  options: Omit<SnnlOptions, 'temperature' | 'reduction'> = {},
): SnnlAtTemperatures {
  temperatures.forEach((t, k) => checkTemperature(t, `temperatures[${k}]`));
  return withSweep(features, labels, options, (sweep, batch) => ({
    temperatures: [...temperatures],
    losses: sweep.losses(temperatures),
    rowsWithoutPartner: batch.rowsWithoutPartner,
    rowsCounted: batch.rowsCounted,
  }));
}

/** Runs `use` on a sweep of the checked batch, then frees both. */
export function withSweep<T>(
  features: tf.Tensor | tf.TensorLike,
  labels: Labels,
  options: Omit<SnnlOptions, 'temperature' | 'reduction'>,
  use: (sweep: Sweep, batch: PairBatch) => T,
): T {
  let batch!: PairBatch;
  tf.tidy(() => {
    const made = makeBatch(features, labels, { ...options, temperature: 1, reduction: 'mean' });
    batch = { ...made, x: tf.keep(made.x) };
  });
  let sweep: Sweep | undefined;
  try {
    sweep = makeSweep(batch);
    return use(sweep, batch);
  } finally {
    sweep?.dispose();
    batch.x.dispose();
  }
}
