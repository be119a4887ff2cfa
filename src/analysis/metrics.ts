/**
 * How well a score (credibility, maximum softmax probability) tells in-distribution inputs (which
 * should score high) from outliers: AUROC, the false-positive rate at 95% true-positive rate, and the
 * binned figures of a reliability diagram and a histogram.
 */
import { seededRandom } from '../random.js';

/**
 * Area under the ROC curve: the probability that a random in-distribution score is above a random
 * outlier's, ties counting one half (the Mann-Whitney statistic), by sorting: O(n log n).
 */
export function auroc(inDistribution: ArrayLike<number>, outliers: ArrayLike<number>): number {
  const pos = Float64Array.from(inDistribution).sort();
  const neg = Float64Array.from(outliers).sort();
  if (pos.length === 0 || neg.length === 0) return NaN;
  let below = 0; // outliers strictly below the current positive
  let equalEnd = 0; // outliers at or below it
  let total = 0;
  for (const p of pos) {
    while (below < neg.length && neg[below]! < p) below++;
    if (equalEnd < below) equalEnd = below;
    while (equalEnd < neg.length && neg[equalEnd]! <= p) equalEnd++;
    total += below + (equalEnd - below) / 2;
  }
  return total / (pos.length * neg.length);
}

/**
 * The share of outliers accepted at the highest threshold that still accepts `tpr` of the
 * in-distribution inputs (accepted: score >= threshold).
 */
export function fprAtTpr(inDistribution: ArrayLike<number>, outliers: ArrayLike<number>, tpr = 0.95): number {
  const pos = Float64Array.from(inDistribution).sort();
  if (pos.length === 0 || outliers.length === 0) return NaN;
  // The threshold: the largest score with at least tpr of the positives at or above it.
  const keep = Math.ceil(tpr * pos.length - 1e-9);
  const threshold = pos[pos.length - Math.max(1, keep)]!;
  let accepted = 0;
  for (let i = 0; i < outliers.length; i++) if (outliers[i]! >= threshold) accepted++;
  return accepted / outliers.length;
}

export interface ReliabilityBin {
  /** [lower, upper): the last bin includes 1. */
  lower: number;
  upper: number;
  count: number;
  /** Accuracy of the inputs in the bin (null when empty). */
  accuracy: number | null;
  /** Mean score in the bin (null when empty). */
  meanScore: number | null;
}

/** Scores in [0, 1] split into `bins` equal bins, with the accuracy of each. */
export function reliability(scores: ArrayLike<number>, correct: ArrayLike<boolean>, bins = 10): ReliabilityBin[] {
  const out = Array.from({ length: bins }, (_, b) => ({
    lower: b / bins,
    upper: (b + 1) / bins,
    n: 0,
    hits: 0,
    sum: 0,
  }));
  for (let i = 0; i < scores.length; i++) {
    const s = scores[i]!;
    const b = Math.min(bins - 1, Math.max(0, Math.floor(s * bins)));
    out[b]!.n++;
    out[b]!.sum += s;
    if (correct[i]) out[b]!.hits++;
  }
  return out.map((b) => ({
    lower: b.lower,
    upper: b.upper,
    count: b.n,
    accuracy: b.n > 0 ? b.hits / b.n : null,
    meanScore: b.n > 0 ? b.sum / b.n : null,
  }));
}

/** Counts of scores in [0, 1] per bin (the last bin includes 1). */
export function histogram(scores: ArrayLike<number>, bins = 10): number[] {
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < scores.length; i++) counts[Math.min(bins - 1, Math.max(0, Math.floor(scores[i]! * bins)))]!++;
  return counts;
}

/**
 * Share of each point's k nearest other points (Euclidean) with its label: how much the labels cluster
 * in a representation. Brute force, for a few hundred points.
 */
export function knnPurity(values: Float32Array, dim: number, labels: ArrayLike<number>, k: number): number {
  const n = labels.length;
  let same = 0;
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let c = 0; c < dim; c++) {
        const diff = values[i * dim + c]! - values[j * dim + c]!;
        s += diff * diff;
      }
      d[j] = j === i ? Infinity : s;
    }
    const order = Array.from({ length: n }, (_, j) => j).sort((a, b) => d[a]! - d[b]! || a - b);
    for (let m = 0; m < Math.min(k, n - 1); m++) if (labels[order[m]!] === labels[i]) same++;
  }
  return same / (n * Math.min(k, n - 1));
}

/**
 * AUROC of each score pair (positives[d] against negatives[d], as `auroc`) on `replicates` bootstrap
 * resamples of the examples: one resample (multiplicities drawn with `seed`) serves every pair, so the
 * pairs' replicates are paired, and the same seed and sizes give the same resamples in another study,
 * pairing two networks' replicates on the same resampled examples. Sorted once per pair; each replicate
 * is one sweep over tie groups. Returns replicates[d][r].
 */
export function bootstrapAurocs(
  positives: ArrayLike<number>[],
  negatives: ArrayLike<number>[],
  replicates: number,
  seed: number,
): Float64Array[] {
  const n = positives[0]?.length ?? 0;
  const m = negatives[0]?.length ?? 0;
  const pairs = positives.map((pos, d) => {
    const neg = negatives[d]!;
    if (pos.length !== n || neg.length !== m) throw new RangeError('bootstrapAurocs: every pair needs the same sizes');
    const scores = Float64Array.from({ length: n + m }, (_, i) => (i < n ? pos[i]! : neg[i - n]!));
    const order = Int32Array.from({ length: n + m }, (_, i) => i).sort((a, b) => scores[a]! - scores[b]!);
    // Tie groups: starts of runs of equal scores in sorted order, and the end.
    const starts: number[] = [];
    for (let i = 0; i < order.length; i++) if (i === 0 || scores[order[i]!] !== scores[order[i - 1]!]) starts.push(i);
    starts.push(order.length);
    return { order, starts };
  });
  const out = positives.map(() => new Float64Array(replicates));
  if (n === 0 || m === 0) {
    out.forEach((o) => o.fill(NaN));
    return out;
  }
  const random = seededRandom(seed);
  const weights = new Float64Array(n + m);
  for (let r = 0; r < replicates; r++) {
    weights.fill(0);
    for (let i = 0; i < n; i++) weights[Math.floor(random() * n)]! += 1;
    for (let j = 0; j < m; j++) weights[n + Math.floor(random() * m)]! += 1;
    pairs.forEach(({ order, starts }, d) => {
      let negBelow = 0;
      let total = 0;
      for (let g = 0; g + 1 < starts.length; g++) {
        let pos = 0;
        let neg = 0;
        for (let i = starts[g]!; i < starts[g + 1]!; i++) {
          const row = order[i]!;
          if (row < n) pos += weights[row]!;
          else neg += weights[row]!;
        }
        total += pos * (negBelow + neg / 2);
        negBelow += neg;
      }
      out[d]![r] = total / (n * m);
    });
  }
  return out;
}
