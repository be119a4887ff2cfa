/**
 * Temperature rules: fixed (a number), annealed, and optimal.
 *
 * - annealed (pt-snnl): T(epoch) = 1 / (1 + epoch)^0.55, epochs counted from 0.
 * - optimal (the paper's l'(X, y) = min over T > 0 of l_sn(X, y, T)): a converged search on log T over
 *   sweeps of the loss (sweep.ts: the distances are computed once per block for every temperature, and
 *   the native kernel also gives the slope and curvature), or the reference code's rule, one gradient
 *   step (rate 0.1) on a multiplier t of the inverse temperature (T = T0 / t, t starting at 1).
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkOneOf, InputError } from '../errors.js';
import { checkTemperature, type Labels, type SnnlOptions } from './options.js';
import { withSweep, type Sweep } from './sweep.js';

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

/** Golden-ratio constant for the section search. */
const GOLDEN = (Math.sqrt(5) - 1) / 2;

/**
 * The minimum over log T: the loss on a grid of 64 points (one sweep), then, in the bracket around the
 * lowest, the root of dLoss/dlog T by Newton steps where the sweep gives the curvature, kept inside the
 * bracket and falling back to bisection (a few sweeps instead of ~20); where the slope does not change
 * sign in the bracket (flat, or the range's edge), golden-section on the loss.
 */
function searchOptimum(sweep: Sweep, tolerance: number): OptimalTemperature {
  const { min, max } = sweep.range;
  const lossAt = (u: number) => sweep.losses([Math.exp(u)])[0]!;
  if (!(max > 0)) return { temperature: 1, loss: lossAt(0), atBoundary: true };
  // Beyond these ends the loss is within e^-30-ish of its limits as T -> 0 and T -> infinity.
  const lo = Math.log(Math.max(min, max * 1e-9) / 30);
  const hi = Math.log(max * 30);
  const points = 64;
  const grid = Array.from({ length: points }, (_, k) => lo + ((hi - lo) * k) / (points - 1));
  const values = sweep.losses(grid.map(Math.exp));
  // The lowest grid point, ignoring any NaN (a NaN first point must not win every comparison).
  let best = values.findIndex((v) => !Number.isNaN(v));
  if (best < 0) return { temperature: 1, loss: NaN, atBoundary: true };
  values.forEach((v, k) => {
    if (v < values[best]!) best = k;
  });
  let a = grid[Math.max(0, best - 1)]!;
  let c = grid[Math.min(points - 1, best + 1)]!;
  const pointAt = (u: number) => sweep.points([Math.exp(u)])[0]!;
  const [ends0, ends1] = sweep.points([Math.exp(a), Math.exp(c)]);
  let u: number;
  let loss: number | undefined;
  if (ends0!.slope < 0 && ends1!.slope > 0) {
    u = grid[best]!;
    let lastStep = c - a;
    for (let iteration = 0; iteration < 200 && c - a > tolerance; iteration++) {
      const p = pointAt(u);
      loss = p.loss;
      if (p.slope === 0) break;
      if (p.slope < 0) a = u;
      else c = u;
      const newton = p.curvature !== undefined && p.curvature > 0 ? u - p.slope / p.curvature : NaN;
      const step = Math.abs(newton - u);
      loss = undefined;
      // A Newton step inside the bracket that at least halves the previous step, else bisection.
      if (newton > a && newton < c && step <= lastStep / 2) {
        u = newton;
        lastStep = step;
        if (step < tolerance / 2) break;
      } else {
        u = (a + c) / 2;
        lastStep = (c - a) / 2;
      }
    }
  } else {
    let x1 = c - GOLDEN * (c - a);
    let x2 = a + GOLDEN * (c - a);
    let f1 = lossAt(x1);
    let f2 = lossAt(x2);
    while (c - a > tolerance) {
      if (f1 <= f2) {
        c = x2;
        x2 = x1;
        f2 = f1;
        x1 = c - GOLDEN * (c - a);
        f1 = lossAt(x1);
      } else {
        a = x1;
        x1 = x2;
        f1 = f2;
        x2 = a + GOLDEN * (c - a);
        f2 = lossAt(x2);
      }
    }
    u = (a + c) / 2;
  }
  const temperature = Math.exp(u);
  loss ??= lossAt(u);
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
  return withSweep(features, labels, options, (sweep) => {
    if (method === 'search') return searchOptimum(sweep, tolerance);
    // Reference rule: t <- t - 0.1 dLoss/dt with T = T0 / t, so dLoss/dt = dLoss/dT * (-T0 / t^2).
    const current = initial / multiplier;
    const slope = sweep.points([current])[0]!.slope / current;
    const stepped = multiplier - 0.1 * slope * (-initial / (multiplier * multiplier));
    // The reference code has no guard: a step past t = 0 gives it a negative temperature and NaN. Here
    // such a step halves t instead (the temperature doubles), the direction the step wanted.
    const next = stepped > 0 && Number.isFinite(stepped) ? stepped : multiplier / 2;
    const temperature = initial / next;
    return { temperature, loss: sweep.losses([temperature])[0]!, multiplier: next };
  });
}

/**
 * SNNL's limit as the temperature grows, where every other point is an equally likely neighbour: the mean
 * over rows with a same-class partner of log((b - 1) / (n_y - 1)), n_y the size of the row's class (both
 * formulas, to within their epsilon). The loss at the optimal temperature never exceeds it; a value near
 * it means the classes are as mixed as random labels.
 *
 * @example
 * snnlCeiling([0, 0, 1, 1]); // log(3): each point's one partner among three neighbours
 */
export function snnlCeiling(labels: ArrayLike<number>): number {
  const sizes = new Map<number, number>();
  for (let i = 0; i < labels.length; i++) sizes.set(labels[i]!, (sizes.get(labels[i]!) ?? 0) + 1);
  let sum = 0;
  let rows = 0;
  for (let i = 0; i < labels.length; i++) {
    const n = sizes.get(labels[i]!)!;
    if (n < 2) continue;
    sum += Math.log((labels.length - 1) / (n - 1));
    rows++;
  }
  return rows === 0 ? 0 : sum / rows;
}
