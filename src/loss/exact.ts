/**
 * SNNL in float64 from direct differences, for inputs whose scales the float32 Gram form cannot resolve
 * (one row or value far larger than the rest: its column mean shifts every row, and |a|^2 + |b|^2 - 2 a.b
 * cancels the digits the loss needs). `gramError` estimates, for a batch and a temperature, how far the
 * float32 form can move the loss; where that is too far, `exactLoss` and `exactOptimalTemperature` give the
 * loss from the data's own values (every distance a sum of squared differences in float64, each row's
 * log-sum-exp shifted by its own largest term). Cost: b^2 d for the distances, then b^2 per temperature.
 */
import { InputError } from '../errors.js';
import type { DistanceName } from './distance.js';
import type { PresetName } from './presets.js';

/** The most rows the exact path takes (its b x b float64 distances: 512 MB at 8,192). */
export const EXACT_MAX_ROWS = 8192;
/** Estimated float32 error of the loss above which `snnl measure` recomputes it exactly. */
export const EXACT_TOLERANCE = 1e-5;

/**
 * A bound, in probability, on how far the float32 Gram form moves the loss at `temperature`: each squared
 * distance's rounding is about 2^-24 (sqrt(d) + 2) (s_i + s_j), s the rows' squared norms after the column
 * means are subtracted (as the kernels do), and a row's loss moves by at most twice its largest shift / T.
 * Squared Euclidean and Euclidean only (cosine's distances lie in [0, 2] whatever the scale: 0 there).
 */
export function gramError(
  values: ArrayLike<number>,
  rows: number,
  dim: number,
  temperature: number,
  distance: DistanceName,
): number {
  if (distance === 'cosine') return 0;
  const mean = new Float64Array(dim);
  for (let i = 0; i < rows; i++) for (let k = 0; k < dim; k++) mean[k]! += values[i * dim + k]! / rows;
  let largest = 0;
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += (values[i * dim + k]! - mean[k]!) ** 2;
    largest = Math.max(largest, s);
  }
  const shift = 2 ** -24 * (Math.sqrt(dim) + 2) * 2 * largest;
  // Euclidean distances are square roots: their error is the squared one's over 2 sqrt(D), at most sqrt(shift).
  return (2 * (distance === 'euclidean' ? Math.sqrt(shift) : shift)) / temperature;
}

/** All pairwise distances in float64 by direct differences ([rows, rows], row-major). */
export function exactDistances(
  values: ArrayLike<number>,
  rows: number,
  dim: number,
  distance: DistanceName,
): Float64Array {
  if (rows > EXACT_MAX_ROWS)
    throw new InputError(
      'features',
      `${rows} rows span scales float32 cannot resolve, and the exact float64 path takes at most ${EXACT_MAX_ROWS}: measure a sample of rows, or scale the outlying rows`,
    );
  const d = new Float64Array(rows * rows);
  const norms = new Float64Array(rows);
  if (distance === 'cosine')
    for (let i = 0; i < rows; i++) {
      let s = 0;
      for (let k = 0; k < dim; k++) s += values[i * dim + k]! ** 2;
      norms[i] = Math.max(Math.sqrt(s), 1e-12);
    }
  for (let i = 0; i < rows; i++)
    for (let j = i + 1; j < rows; j++) {
      let s = 0;
      if (distance === 'cosine') {
        for (let k = 0; k < dim; k++) s += values[i * dim + k]! * values[j * dim + k]!;
        s = 1 - s / (norms[i]! * norms[j]!);
      } else {
        for (let k = 0; k < dim; k++) s += (values[i * dim + k]! - values[j * dim + k]!) ** 2;
        if (distance === 'euclidean') s = Math.sqrt(s);
      }
      d[i * rows + j] = d[j * rows + i] = s;
    }
  return d;
}

/** The loss at `temperature` from exact distances: the mean over counted rows (the preset's rule). */
export function exactLoss(
  distances: Float64Array,
  labels: ArrayLike<number>,
  temperature: number,
  preset: PresetName,
): { loss: number; rowsWithoutPartner: number; rowsCounted: number } {
  const b = labels.length;
  let total = 0;
  let counted = 0;
  let without = 0;
  for (let i = 0; i < b; i++) {
    let hasPartner = false;
    let top = -Infinity;
    let topSame = -Infinity;
    for (let j = 0; j < b; j++) {
      if (j === i) continue;
      const l = -distances[i * b + j]! / temperature;
      top = Math.max(top, l);
      if (labels[j] === labels[i]) {
        hasPartner = true;
        topSame = Math.max(topSame, l);
      }
    }
    if (!hasPartner) without++;
    if (preset === 'stable') {
      if (!hasPartner) continue;
      let all = 0;
      let same = 0;
      for (let j = 0; j < b; j++) {
        if (j === i) continue;
        const l = -distances[i * b + j]! / temperature;
        all += Math.exp(l - top);
        if (labels[j] === labels[i]) same += Math.exp(l - topSame);
      }
      total += top + Math.log(all) - (topSame + Math.log(same));
      counted++;
    } else {
      // The reference formula with its epsilon: -log(eps + sum_same / (eps + sum_all)), unshifted exponentials.
      const eps = 1e-5;
      let all = 0;
      let same = 0;
      for (let j = 0; j < b; j++) {
        if (j === i) continue;
        const w = Math.exp(-distances[i * b + j]! / temperature);
        all += w;
        if (labels[j] === labels[i]) same += w;
      }
      total += -Math.log(eps + same / (eps + all));
      counted++;
    }
  }
  return { loss: counted === 0 ? 0 : total / counted, rowsWithoutPartner: without, rowsCounted: counted };
}

/**
 * The temperature that minimizes the exact loss: a grid over log T spanning the distances' scales
 * (1e-3 x the smallest positive distance to 1e3 x the largest), then golden-section refinement within two
 * grid steps of the grid's best point.
 */
export function exactOptimalTemperature(
  distances: Float64Array,
  labels: ArrayLike<number>,
  preset: PresetName,
): { temperature: number; loss: number; atBoundary: boolean } {
  let low = Infinity;
  let high = 0;
  for (const v of distances)
    if (v > 0) {
      low = Math.min(low, v);
      high = Math.max(high, v);
    }
  if (!(high > 0)) return { temperature: 1, loss: exactLoss(distances, labels, 1, preset).loss, atBoundary: true };
  const from = Math.log(low * 1e-3);
  const to = Math.log(high * 1e3);
  const at = (u: number) => exactLoss(distances, labels, Math.exp(u), preset).loss;
  const steps = 80;
  let best = 0;
  const grid = Array.from({ length: steps + 1 }, (_, k) => from + ((to - from) * k) / steps);
  const values = grid.map(at);
  values.forEach((v, k) => v < values[best]! && (best = k));
  // Two grid steps each side: the loss can be flat to 1e-7 near its minimum, and the grid's best point
  // need not be the nearest to it.
  let a = grid[Math.max(0, best - 2)]!;
  let c = grid[Math.min(steps, best + 2)]!;
  const ratio = (Math.sqrt(5) - 1) / 2;
  let x1 = c - ratio * (c - a);
  let x2 = a + ratio * (c - a);
  let f1 = at(x1);
  let f2 = at(x2);
  for (let k = 0; k < 60 && c - a > 1e-9; k++) {
    if (f1 <= f2) {
      c = x2;
      x2 = x1;
      f2 = f1;
      x1 = c - ratio * (c - a);
      f1 = at(x1);
    } else {
      a = x1;
      x1 = x2;
      f1 = f2;
      x2 = a + ratio * (c - a);
      f2 = at(x2);
    }
  }
  const u = f1 <= f2 ? x1 : x2;
  const loss = Math.min(f1, f2, values[best]!);
  return {
    temperature: Math.exp(loss === values[best] ? grid[best]! : u),
    loss,
    atBoundary: best === 0 || best === steps,
  };
}
