/**
 * Temperature rules: fixed (a number), annealed, and optimal.
 *
 * - annealed (pt-snnl): T(epoch) = 1 / (1 + epoch)^0.55, epochs counted from 0.
 * - optimal (the paper's l'(X, y) = min over T > 0 of l_sn(X, y, T)): a converged search on log T that
 *   uses dLoss/dT = -sum_ij H_ij D_ij / T, or the reference code's rule, one gradient step (rate 0.1) on
 *   a multiplier t of the inverse temperature (T = T0 / t, t starting at 1) per evaluation.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkOneOf, InputError } from '../errors.js';
import { checkTemperature, type Labels, type SnnlOptions } from './options.js';
import { blockRanges, blockTensors, makeBatch, makeBlock, type PairBatch } from './snnl.js';
import { asColumn, rowSlice } from './shape.js';

/** pt-snnl's schedule: 1 / (1 + epoch)^0.55 (1.0, 0.683, ..., 0.282 at epoch 9). */
export function annealedTemperature(epoch: number): number {
  if (!Number.isInteger(epoch) || epoch < 0) {
    throw new InputError('epoch', `expected a whole number from 0, got ${String(epoch)}`);
  }
  return 1 / Math.pow(1 + epoch, 0.55);
}

export interface OptimalTemperatureOptions extends Omit<SnnlOptions, 'temperature' | 'reduction'> {
  /** 'search' (default): converged minimum over log T. 'one-step': the reference code's single step. */
  method?: 'search' | 'one-step';
  /** One-step rule: the base temperature T0. Default 1. */
  initialTemperature?: number;
  /** One-step rule: the multiplier t from the previous evaluation. Default 1. */
  multiplier?: number;
  /** Search: stop when the bracket on log T is narrower than this. Default 1e-6. */
  tolerance?: number;
}

export interface OptimalTemperature {
  temperature: number;
  /** The loss at that temperature (mean over counted rows). */
  loss: number;
  /** One-step rule: the updated multiplier t, to pass to the next evaluation. */
  multiplier?: number;
  /** Search: true when the minimum lies at the edge of the range searched (the loss is still falling). */
  atBoundary?: boolean;
}

/** Loss and dLoss/dT at one temperature, with the batch's distances computed once. */
interface Evaluator {
  at(temperature: number): { loss: number; slope: number };
  /** Smallest positive and largest distance between distinct rows. */
  range: { min: number; max: number };
  dispose(): void;
}

function evaluator(batch: PairBatch): Evaluator {
  const { distance, formula } = batch.options;
  const b = batch.labels.length;
  const ranges = blockRanges(b, batch.options.blockSize);
  const blocks = ranges.map(([start, end]) => makeBlock(batch, start, end));
  const distances = tf.tidy(() => {
    blocks.forEach((block) => blockTensors(block).forEach((t) => tf.keep(t)));
    const prepared = distance.prepare(batch.x, 'rows');
    return blocks.map((block) => prepared.rows(block));
  });
  const kept = { distances, blocks };
  const weights = tf.tensor1d(batch.counted.map((c) => c / Math.max(1, batch.rowsCounted)));
  const range = tf.tidy(() => {
    let min = Infinity;
    let max = 0;
    kept.distances.forEach((d, k) => {
      const offDiagonal = tf.cast(kept.blocks[k]!.offDiagonal, 'bool');
      const positive = tf.logicalAnd(tf.greater(d, 0), offDiagonal);
      min = Math.min(min, tf.min(tf.where(positive, d, tf.fill(d.shape, Infinity))).dataSync()[0]!);
      max = Math.max(max, tf.max(d).dataSync()[0]!);
    });
    return { min, max };
  });
  return {
    range,
    at(temperature) {
      const [loss, slope] = tf
        .tidy(() => {
          let lossSum: tf.Tensor = tf.scalar(0);
          let slopeSum: tf.Tensor = tf.scalar(0);
          kept.distances.forEach((d, k) => {
            const block = kept.blocks[k]!;
            const rows = formula.rows(d, temperature, block);
            const w = rowSlice(weights, block.start, block.end);
            lossSum = tf.add(lossSum, tf.sum(tf.mul(rows.loss, w)));
            const column = rows.stats.map(asColumn);
            const h = formula.gradient(d, temperature, block, column, asColumn(w), rows.cache);
            slopeSum = tf.add(slopeSum, tf.div(tf.sum(tf.mul(h, d)), -temperature));
          });
          return [lossSum, slopeSum];
        })
        .map((t) => {
          const v = t.dataSync()[0]!;
          t.dispose();
          return v;
        });
      return { loss: loss!, slope: slope! };
    },
    dispose() {
      tf.dispose([kept.distances, kept.blocks.flatMap(blockTensors), weights]);
    },
  };
}

/** Golden-ratio constant for the section search. */
const GOLDEN = (Math.sqrt(5) - 1) / 2;

function searchOptimum(ev: Evaluator, tolerance: number): OptimalTemperature {
  const { min, max } = ev.range;
  if (!(max > 0)) return { temperature: 1, loss: ev.at(1).loss, atBoundary: true };
  // Beyond these ends the loss is within e^-30-ish of its limits as T -> 0 and T -> infinity.
  const lo = Math.log(Math.max(min, max * 1e-9) / 30);
  const hi = Math.log(max * 30);
  const points = 64;
  const grid = Array.from({ length: points }, (_, k) => lo + ((hi - lo) * k) / (points - 1));
  const values = grid.map((u) => ev.at(Math.exp(u)).loss);
  // The lowest grid point, ignoring any NaN (a NaN first point must not win every comparison).
  let best = values.findIndex((v) => !Number.isNaN(v));
  if (best < 0) return { temperature: 1, loss: NaN, atBoundary: true };
  values.forEach((v, k) => {
    if (v < values[best]!) best = k;
  });
  let a = grid[Math.max(0, best - 1)]!;
  let c = grid[Math.min(points - 1, best + 1)]!;
  // Bisection on the sign of dLoss/dlogT inside the bracket around the best grid point; where the slope
  // does not change sign there (flat or at the range's edge), golden-section on the loss instead.
  const slopeAt = (u: number) => ev.at(Math.exp(u)).slope;
  if (slopeAt(a) < 0 && slopeAt(c) > 0) {
    while (c - a > tolerance) {
      const m = (a + c) / 2;
      if (slopeAt(m) < 0) a = m;
      else c = m;
    }
  } else {
    let x1 = c - GOLDEN * (c - a);
    let x2 = a + GOLDEN * (c - a);
    let f1 = ev.at(Math.exp(x1)).loss;
    let f2 = ev.at(Math.exp(x2)).loss;
    while (c - a > tolerance) {
      if (f1 <= f2) {
        c = x2;
        x2 = x1;
        f2 = f1;
        x1 = c - GOLDEN * (c - a);
        f1 = ev.at(Math.exp(x1)).loss;
      } else {
        a = x1;
        x1 = x2;
        f1 = f2;
        x2 = a + GOLDEN * (c - a);
        f2 = ev.at(Math.exp(x2)).loss;
      }
    }
  }
  const u = (a + c) / 2;
  const temperature = Math.exp(u);
  const loss = ev.at(temperature).loss;
  const atBoundary = best === 0 || best === points - 1;
  // Keep the grid point where it is lower (a flat or noisy bracket).
  if (values[best]! < loss) return { temperature: Math.exp(grid[best]!), loss: values[best]!, atBoundary };
  return { temperature, loss, atBoundary };
}

/**
 * The temperature that minimizes the loss of `features` with `labels`, and the loss there.
 *
 * @example
 * const { temperature, loss } = optimalTemperature(x, y, { distance: 'cosine' });
 */
export function optimalTemperature(
  features: tf.Tensor | tf.TensorLike,
  labels: Labels,
  options: OptimalTemperatureOptions = {},
): OptimalTemperature {
  const method = checkOneOf(options.method ?? 'search', ['search', 'one-step'] as const, 'method');
  const tolerance = options.tolerance ?? 1e-6;
  if (!(tolerance > 0)) throw new InputError('tolerance', `expected a number above 0, got ${String(tolerance)}`);
  const initial = checkTemperature(options.initialTemperature ?? 1, 'initialTemperature');
  const multiplier = options.multiplier ?? 1;
  if (!Number.isFinite(multiplier) || multiplier <= 0) {
    throw new InputError('multiplier', `expected a finite number above 0, got ${String(multiplier)}`);
  }
  let batch!: PairBatch;
  tf.tidy(() => {
    const made = makeBatch(features, labels, { ...options, temperature: 1, reduction: 'mean' });
    batch = { ...made, x: tf.keep(made.x) };
  });
  const ev = evaluator(batch);
  try {
    if (method === 'search') return searchOptimum(ev, tolerance);
    // Reference rule: t <- t - 0.1 dLoss/dt with T = T0 / t, so dLoss/dt = dLoss/dT * (-T0 / t^2).
    const { slope } = ev.at(initial / multiplier);
    const stepped = multiplier - 0.1 * slope * (-initial / (multiplier * multiplier));
    // The reference code has no guard: a step past t = 0 gives it a negative temperature and NaN. Here
    // such a step halves t instead (the temperature doubles), the direction the step wanted.
    const next = stepped > 0 && Number.isFinite(stepped) ? stepped : multiplier / 2;
    const temperature = initial / next;
    return { temperature, loss: ev.at(temperature).loss, multiplier: next };
  } finally {
    ev.dispose();
    batch.x.dispose();
  }
}
