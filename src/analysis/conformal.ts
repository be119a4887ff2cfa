/**
 * Conformal prediction on nonconformity scores (Vovk, Gammerman & Shafer; the form MAPIE, crepes and
 * TorchCP use): p-values with a finite-sample guarantee, prediction sets at chosen error rates, and
 * their empirical coverage.
 *
 * With n calibration scores a_1..a_n and a test score s for label j:
 * - `finite`:   p = (#{a_i >= s} + 1) / (n + 1). On exchangeable data P(p <= eps) <= eps for the true label,
 *   so the set {j : p_j > eps} holds the true label with probability at least 1 - eps.
 * - `smoothed`: p = (#{a_i > s} + u (#{a_i = s} + 1)) / (n + 1), u uniform in [0, 1) (seeded): exactly
 *   uniform on exchangeable data, so coverage is exactly 1 - eps in expectation.
 * Mondrian (class-conditional) calibration keeps one calibration list per class and scores label j
 * against class j's list only, which gives the guarantee within each class.
 */
import { InputError } from '../errors.js';
import { seededRandom } from '../random.js';

export const CONFORMAL_FORMS = ['finite', 'smoothed'] as const;
export type ConformalForm = (typeof CONFORMAL_FORMS)[number];

/** How many of `sorted` (ascending) lie below `s` (with `inclusive`, at or below it): a binary search. */
export function countBelow(sorted: Float64Array, s: number, inclusive = false): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! < s || (inclusive && sorted[mid] === s)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The conformal p-value of score `s` against sorted calibration scores; `u` in [0, 1) for `smoothed`. */
export function conformalPValue(sorted: Float64Array, s: number, form: ConformalForm, u = 0): number {
  const n = sorted.length;
  const below = countBelow(sorted, s);
  const atMost = countBelow(sorted, s, true);
  const greater = n - atMost;
  const equal = atMost - below;
  return form === 'finite' ? (greater + equal + 1) / (n + 1) : (greater + u * (equal + 1)) / (n + 1);
}

export interface ConformalCalibration {
  /** One sorted list of every calibration score, or with `mondrian`, one per class. */
  byClass: Float64Array[] | null;
  all: Float64Array;
}

/** Sorts calibration scores (the true label's nonconformity of each calibration example). */
export function calibrate(
  scores: ArrayLike<number>,
  labels: ArrayLike<number>,
  classes: number,
  mondrian = false,
): ConformalCalibration {
  if (scores.length !== labels.length)
    throw new InputError('calibration', `${scores.length} scores for ${labels.length} labels`);
  if (scores.length === 0) throw new InputError('calibration', 'is empty');
  const all = Float64Array.from(scores).sort();
  if (!mondrian) return { all, byClass: null };
  const lists: number[][] = Array.from({ length: classes }, () => []);
  for (let i = 0; i < scores.length; i++) lists[labels[i]!]!.push(scores[i]!);
  const empty = lists.findIndex((l) => l.length === 0);
  if (empty >= 0)
    throw new InputError('calibration', `has no example of class ${empty}; Mondrian calibration needs every class`);
  return { all, byClass: lists.map((l) => Float64Array.from(l).sort()) };
}

/**
 * p-values [n, classes] of nonconformity scores [n, classes]. `seed` draws the smoothed form's u, one per
 * (example, label).
 */
export function conformalPValues(
  scores: ArrayLike<number>,
  classes: number,
  calibration: ConformalCalibration,
  form: ConformalForm,
  seed = 1234,
): Float64Array {
  const random = seededRandom(seed);
  const out = new Float64Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    const list = calibration.byClass ? calibration.byClass[i % classes]! : calibration.all;
    out[i] = conformalPValue(list, scores[i]!, form, form === 'smoothed' ? random() : 0);
  }
  return out;
}

export interface SetSummary {
  epsilon: number;
  /** Share of examples whose set holds their true label. */
  coverage: number;
  /** Mean number of labels in a set. */
  meanSize: number;
  /** Share of empty sets (no label conforms: an outlier, at this error rate). */
  empty: number;
}

/** The prediction set of each example at error rate `epsilon`: labels with p > epsilon, as 0/1 [n, classes]. */
export function predictionSets(pValues: Float64Array, epsilon: number): Uint8Array {
  return Uint8Array.from(pValues, (p) => (p > epsilon ? 1 : 0));
}

/** Coverage, mean set size and empty share of the sets at each error rate. */
export function setSummaries(
  pValues: Float64Array,
  classes: number,
  labels: ArrayLike<number> | null,
  epsilons: readonly number[],
): SetSummary[] {
  const n = pValues.length / classes;
  return epsilons.map((epsilon) => {
    if (!(epsilon > 0 && epsilon < 1)) throw new InputError('epsilon', `expected rates in (0, 1), got ${epsilon}`);
    let covered = 0;
    let size = 0;
    let empty = 0;
    for (let i = 0; i < n; i++) {
      let count = 0;
      for (let j = 0; j < classes; j++) if (pValues[i * classes + j]! > epsilon) count++;
      size += count;
      if (count === 0) empty++;
      if (labels && pValues[i * classes + labels[i]!]! > epsilon) covered++;
    }
    return { epsilon, coverage: labels ? covered / n : NaN, meanSize: size / n, empty: empty / n };
  });
}
