/**
 * The Fréchet distance by hand: diagonal covariances (closed form), a 2-d case with correlated features
 * (the square root of the 2 x 2 product's eigenvalues by the quadratic formula), and the eigen solver.
 */
import { describe, expect, it } from 'vitest';
import { frechetDistance, symmetricEigen } from '../src/analysis/frechet.js';
import { inputErrorMessage as message } from './helpers.js';
import { normalMatrix, seeded } from './oracle.js';

function moments(rows: number[][]) {
  const n = rows.length;
  const d = rows[0]!.length;
  const mean = Array.from({ length: d }, (_, k) => rows.reduce((s, r) => s + r[k]!, 0) / n);
  const cov = Array.from({ length: d }, (_, x) =>
    Array.from(
      { length: d },
      (_, y) => rows.reduce((s, r) => s + (r[x]! - mean[x]!) * (r[y]! - mean[y]!), 0) / (n - 1),
    ),
  );
  return { mean, cov };
}

describe('Fréchet distance', () => {
  it('a 2-d case by hand: |mu_a - mu_b|^2 + tr S_a + tr S_b - 2 sum sqrt(eig(S_a S_b))', () => {
    const r = seeded(6);
    const a = normalMatrix(200, 2, r).map(([x, y]) => [x!, 0.8 * x! + 0.6 * y!]);
    const b = normalMatrix(150, 2, r).map(([x, y]) => [2 * x! + 1, 0.5 * y! - 0.3 * x! - 2]);
    const ma = moments(a);
    const mb = moments(b);
    // P = S_a S_b (2 x 2): its eigenvalues from trace and determinant.
    const [[a11, a12], [a21, a22]] = ma.cov as [[number, number], [number, number]];
    const [[b11, b12], [b21, b22]] = mb.cov as [[number, number], [number, number]];
    const p = [a11 * b11 + a12 * b21, a11 * b12 + a12 * b22, a21 * b11 + a22 * b21, a21 * b12 + a22 * b22];
    const tr = p[0]! + p[3]!;
    const det = p[0]! * p[3]! - p[1]! * p[2]!;
    const disc = Math.sqrt(Math.max(0, (tr * tr) / 4 - det));
    const roots = Math.sqrt(tr / 2 + disc) + Math.sqrt(Math.max(0, tr / 2 - disc));
    const want =
      (ma.mean[0]! - mb.mean[0]!) ** 2 + (ma.mean[1]! - mb.mean[1]!) ** 2 + a11 + a22 + b11 + b22 - 2 * roots;
    const got = frechetDistance(a.flat(), 200, b.flat(), 150, 2);
    expect(got).toBeCloseTo(want, 9);
  });

  it('diagonal covariances: sum of (mu differences)^2 + (sigma_a - sigma_b)^2; identical sets give 0', () => {
    const r = seeded(2);
    const a = normalMatrix(400, 5, r).map((row) => row.map((v, k) => v * (k + 1)));
    const b = normalMatrix(400, 5, r).map((row) => row.map((v, k) => v * 2 + k));
    const got = frechetDistance(a.flat(), 400, b.flat(), 400, 5);
    const ma = moments(a);
    const mb = moments(b);
    // Close to the diagonal closed form (the sample covariances are nearly diagonal).
    let diagonal = 0;
    for (let k = 0; k < 5; k++)
      diagonal += (ma.mean[k]! - mb.mean[k]!) ** 2 + (Math.sqrt(ma.cov[k]![k]!) - Math.sqrt(mb.cov[k]![k]!)) ** 2;
    expect(Math.abs(got - diagonal) / diagonal).toBeLessThan(0.05);
    expect(frechetDistance(a.flat(), 400, a.flat(), 400, 5)).toBeLessThan(1e-9);
    expect(message(() => frechetDistance([1, 2], 1, [1, 2, 3, 4], 2, 2))).toBe(
      'features: each set needs at least 2 rows',
    );
  });

  it('symmetric eigenvalues reproduce the matrix', () => {
    const r = seeded(3);
    const n = 6;
    const x = normalMatrix(n, n, r);
    const m = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) m[i * n + j] = x[i]![j]! + x[j]![i]!;
    const { values, vectors } = symmetricEigen(m, n);
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        let sum = 0;
        for (let k = 0; k < n; k++) sum += vectors[i * n + k]! * values[k]! * vectors[j * n + k]!;
        expect(sum).toBeCloseTo(m[i * n + j]!, 9);
      }
  });
});
