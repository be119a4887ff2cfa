/**
 * The Fréchet distance between two sets of feature rows, each summarized by its mean and covariance (as
 * FID does with Inception features; here any network's):
 *
 *     d^2 = |mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))
 *
 * with tr (S_a S_b)^(1/2) = sum of the square roots of the eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric,
 * positive semi-definite). All in float64; symmetric eigenvalues by cyclic Jacobi rotations.
 */
import { InputError } from '../errors.js';

/** Eigenvalues and eigenvectors (columns of `vectors`, row-major n x n) of a symmetric matrix (copied). */
export function symmetricEigen(matrix: Float64Array, n: number): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let scale = 0;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        if (i !== j) off += a[i * n + j]! ** 2;
        scale += a[i * n + j]! ** 2;
      }
    if (off <= 1e-30 * scale || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q]!;
        if (apq === 0) continue;
        const theta = (a[q * n + q]! - a[p * n + p]!) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p]!;
          const akq = a[k * n + q]!;
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k]!;
          const aqk = a[q * n + k]!;
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p]!;
          const vkq = v[k * n + q]!;
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: n }, (_, i) => a[i * n + i]!), vectors: v };
}

function moments(values: ArrayLike<number>, rows: number, dim: number) {
  const mean = new Float64Array(dim);
  for (let i = 0; i < rows; i++) for (let d = 0; d < dim; d++) mean[d]! += values[i * dim + d]! / rows;
  const cov = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let i = 0; i < rows; i++) {
    for (let d = 0; d < dim; d++) centred[d] = values[i * dim + d]! - mean[d]!;
    for (let x = 0; x < dim; x++) for (let y = 0; y <= x; y++) cov[x * dim + y]! += centred[x]! * centred[y]!;
  }
  for (let x = 0; x < dim; x++)
    for (let y = 0; y <= x; y++) {
      cov[x * dim + y]! /= rows - 1;
      cov[y * dim + x] = cov[x * dim + y]!;
    }
  return { mean, cov };
}

/** d^2 between the rows of `a` ([rowsA, dim]) and of `b` ([rowsB, dim]); each set needs 2 rows or more. */
export function frechetDistance(
  a: ArrayLike<number>,
  rowsA: number,
  b: ArrayLike<number>,
  rowsB: number,
  dim: number,
): number {
  if (a.length !== rowsA * dim || b.length !== rowsB * dim)
    throw new InputError('features', `expected ${rowsA} and ${rowsB} rows of ${dim} values`);
  if (rowsA < 2 || rowsB < 2) throw new InputError('features', 'each set needs at least 2 rows');
  const ma = moments(a, rowsA, dim);
  const mb = moments(b, rowsB, dim);
  // S_a^(1/2) from S_a's eigenvectors; then the eigenvalues of S_a^(1/2) S_b S_a^(1/2).
  const ea = symmetricEigen(ma.cov, dim);
  const root = new Float64Array(dim * dim);
  for (let x = 0; x < dim; x++)
    for (let y = 0; y < dim; y++) {
      let sum = 0;
      for (let k = 0; k < dim; k++)
        sum += ea.vectors[x * dim + k]! * Math.sqrt(Math.max(0, ea.values[k]!)) * ea.vectors[y * dim + k]!;
      root[x * dim + y] = sum;
    }
  const product = (p: Float64Array, q: Float64Array) => {
    const out = new Float64Array(dim * dim);
    for (let x = 0; x < dim; x++)
      for (let k = 0; k < dim; k++) {
        const pxk = p[x * dim + k]!;
        if (pxk === 0) continue;
        for (let y = 0; y < dim; y++) out[x * dim + y]! += pxk * q[k * dim + y]!;
      }
    return out;
  };
  const middle = product(product(root, mb.cov), root);
  for (let x = 0; x < dim; x++)
    for (let y = 0; y < x; y++)
      middle[x * dim + y] = middle[y * dim + x] = (middle[x * dim + y]! + middle[y * dim + x]!) / 2;
  const traceRoot = symmetricEigen(middle, dim).values.reduce((s, v) => s + Math.sqrt(Math.max(0, v)), 0);
  let distance = 0;
  for (let d = 0; d < dim; d++)
    distance += (ma.mean[d]! - mb.mean[d]!) ** 2 + ma.cov[d * dim + d]! + mb.cov[d * dim + d]!;
  return Math.max(0, distance - 2 * traceRoot);
}
