/**
 * precision@1 and MAP@R against a brute-force count in float64 (every pair's distance, a full sort), as
 * pytorch-metric-learning's AccuracyCalculator defines them with the queries as their own references.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { retrievalMetrics } from '../src/analysis/retrieval.js';
import { normalMatrix, pairDistance, seeded, type Matrix } from './oracle.js';
import { inputErrorMessage as message, onBackend } from './helpers.js';

beforeAll(() => onBackend('cpu'));

function bruteForce(rows: Matrix, labels: number[], distance: 'squared-euclidean' | 'cosine') {
  let p1 = 0;
  let map = 0;
  let queries = 0;
  rows.forEach((q, i) => {
    const r = labels.filter((y, j) => j !== i && y === labels[i]).length;
    if (r === 0) return;
    queries++;
    const order = rows
      .map((x, j) => ({ j, d: pairDistance(q, x, distance) }))
      .filter((o) => o.j !== i)
      .sort((a, b) => a.d - b.d || a.j - b.j);
    if (labels[order[0]!.j] === labels[i]) p1++;
    let hits = 0;
    let sum = 0;
    order.slice(0, r).forEach((o, pos) => {
      if (labels[o.j] === labels[i]) {
        hits++;
        sum += hits / (pos + 1);
      }
    });
    map += sum / r;
  });
  return { precisionAt1: p1 / queries, mapAtR: map / queries, queries };
}

describe('retrieval metrics', () => {
  it.each(['squared-euclidean', 'cosine'] as const)(
    'match a brute-force count (%s), lone queries left out',
    (distance) => {
      const r = seeded(21);
      const labels = Array.from({ length: 90 }, (_, i) => (i < 89 ? i % 4 : 7)); // class 7 has one row
      // Overlapping classes: shifted means, so neither metric is 0 or 1.
      const rows = normalMatrix(90, 6, r).map((row, i) => row.map((v, j) => v + (j === labels[i]! % 6 ? 1.2 : 0)));
      const got = retrievalMetrics({ rows: 90, dim: 6, values: Float32Array.from(rows.flat()) }, labels, distance);
      const want = bruteForce(rows, labels, distance);
      expect(got.queries).toBe(89);
      expect(got.queries).toBe(want.queries);
      expect(got.precisionAt1).toBeCloseTo(want.precisionAt1, 12);
      expect(got.mapAtR).toBeCloseTo(want.mapAtR, 12);
      expect(want.mapAtR).toBeGreaterThan(0.2);
      expect(want.mapAtR).toBeLessThan(0.9);
    },
  );

  it('separated classes give 1; no partners at all gives NaN with no queries', () => {
    const labels = [0, 0, 1, 1, 2, 2];
    const values = Float32Array.from([0, 0, 0.1, 0, 10, 0, 10, 0.1, 0, 10, 0.1, 10]);
    expect(retrievalMetrics({ rows: 6, dim: 2, values }, labels)).toEqual({ precisionAt1: 1, mapAtR: 1, queries: 6 });
    const lone = retrievalMetrics({ rows: 3, dim: 1, values: Float32Array.from([1, 2, 3]) }, [0, 1, 2]);
    expect(lone.queries).toBe(0);
    expect(lone.precisionAt1).toBeNaN();
    expect(message(() => retrievalMetrics({ rows: 3, dim: 1, values: Float32Array.from([1, 2, 3]) }, [0, 1]))).toBe(
      'labels: 2 labels for 3 rows',
    );
  });
});
