/**
 * The detectors beside credibility, each against a float64 computation by hand: energy, Mahalanobis (with
 * the covariance inverted by Gauss-Jordan here, not Cholesky), and the k-th nearest-neighbour distance.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { energyScore, fitMahalanobis, knnDistanceScore, mahalanobisScore } from '../src/analysis/detectors.js';
import { normalMatrix, seeded } from './oracle.js';
import { inputErrorMessage as message, onBackend } from './helpers.js';

beforeAll(() => onBackend('cpu'));

function invert(m: number[][]): number[][] {
  const n = m.length;
  const a = m.map((row, i) => [...row, ...Array.from({ length: n }, (_, j) => (i === j ? 1 : 0))]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(a[r]![c]!) > Math.abs(a[p]![c]!)) p = r;
    [a[c], a[p]] = [a[p]!, a[c]!];
    const pivot = a[c]![c]!;
    for (let j = 0; j < 2 * n; j++) a[c]![j]! /= pivot;
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = a[r]![c]!;
      for (let j = 0; j < 2 * n; j++) a[r]![j]! -= f * a[c]![j]!;
    }
  }
  return a.map((row) => row.slice(n));
}

describe('out-of-distribution detectors', () => {
  it('energy: T log sum exp(z / T), by hand', () => {
    const logits = [1, 2, 3, -1000, 0, 1000];
    const scores = energyScore(logits, 3);
    expect(scores[0]).toBeCloseTo(Math.log(Math.E + Math.E ** 2 + Math.E ** 3), 12);
    expect(scores[1]).toBeCloseTo(1000, 9); // no overflow
    expect(energyScore([1, 2, 3], 3, 2)[0]).toBeCloseTo(2 * Math.log(Math.exp(0.5) + Math.exp(1) + Math.exp(1.5)), 12);
    expect(message(() => energyScore([1, 2, 3, 4], 3))).toBe('logits: 4 values do not make rows of 3 classes');
  });

  it('Mahalanobis: class means, the shared 1/n covariance, minus the smallest squared distance', () => {
    const random = seeded(9);
    const dim = 4;
    const classes = 3;
    const rows = normalMatrix(90, dim, random).map((r, i) => r.map((v, d) => v * (1 + d) + 3 * (i % classes)));
    const labels = rows.map((_, i) => i % classes);
    const model = fitMahalanobis(rows.flat(), dim, labels, classes);
    // By hand in float64.
    const means = Array.from({ length: classes }, (_, c) => {
      const members = rows.filter((_, i) => labels[i] === c);
      return Array.from({ length: dim }, (_, d) => members.reduce((s, r) => s + r[d]!, 0) / members.length);
    });
    const cov = Array.from({ length: dim }, (_, a) =>
      Array.from(
        { length: dim },
        (_, b) =>
          rows.reduce((s, r, i) => s + (r[a]! - means[labels[i]!]![a]!) * (r[b]! - means[labels[i]!]![b]!), 0) / 90,
      ),
    );
    cov.forEach((row, a) => (row[a]! += model.ridge));
    const precision = invert(cov);
    const queries = normalMatrix(7, dim, random).map((r) => r.map((v) => 4 * v));
    const got = mahalanobisScore(model, queries.flat());
    queries.forEach((x, q) => {
      const distances = means.map((mu) => {
        const diff = x.map((v, d) => v - mu[d]!);
        return diff.reduce((s, da, a) => s + da * diff.reduce((t, db, b) => t + precision[a]![b]! * db, 0), 0);
      });
      expect(got[q]!).toBeCloseTo(-Math.min(...distances), 9);
    });
    expect(message(() => fitMahalanobis([1, 2, 3], 2, [0, 1], 2))).toBe(
      'features: 3 values are not 2 rows of 2 features',
    );
    expect(message(() => fitMahalanobis([1, 2, 3, 4], 2, [0, 0], 2))).toBe('labels: class 1 has no training example');
  });

  it('k-th nearest neighbour distance of unit-length features, against brute force', () => {
    const random = seeded(4);
    const train = normalMatrix(300, 6, random);
    const queries = normalMatrix(20, 6, random).map((r, i) => r.map((v) => (i < 10 ? v : v + 5)));
    const unit = (r: number[]) => {
      const norm = Math.hypot(...r);
      return r.map((v) => v / norm);
    };
    const chunks = [{ rows: 300, dim: 6, values: Float32Array.from(train.flat()) }];
    const query = { rows: 20, dim: 6, values: Float32Array.from(queries.flat()) };
    const k = 5;
    const got = knnDistanceScore(chunks, query, k);
    queries.forEach((q, i) => {
      const uq = unit(q);
      const d = train.map((t) => Math.hypot(...unit(t).map((v, j) => v - uq[j]!))).sort((a, b) => a - b);
      expect(got[i]!).toBeCloseTo(-d[k - 1]!, 5);
    });
    // The inputs are left as they were.
    expect(chunks[0]!.values[0]).toBe(Math.fround(train[0]![0]!));
  });
});
