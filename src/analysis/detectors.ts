/**
 * Out-of-distribution scores the field compares against, on a network's logits and penultimate features;
 * each higher for inputs that look in-distribution (as credibility and max softmax are), so AUROC and
 * FPR at 95% TPR read the same way for all of them.
 *
 * - energy (Liu et al. 2020): T log sum_j exp(z_j / T) of the logits, the negative free energy.
 * - Mahalanobis (Lee et al. 2018, without input preprocessing or feature ensembles): class means and one
 *   shared covariance of the training features; the score is minus the smallest squared Mahalanobis
 *   distance to a class mean.
 * - k-th nearest neighbour (Sun et al. 2022): features scaled to unit length; the score is minus the
 *   Euclidean distance to the k-th nearest training feature.
 * All in float64 but the k-NN search, which is knn.ts's exact float32 search.
 */
import { InputError } from '../errors.js';
import { nearestNeighbors, type FeatureChunks, type FeatureMatrix } from './knn.js';
import { unitRows } from './dknn.js';

/** The energy score of each row of `logits` ([n, classes]) at temperature `temperature` (default 1). */
export function energyScore(logits: ArrayLike<number>, classes: number, temperature = 1): Float64Array {
  if (logits.length % classes !== 0)
    throw new InputError('logits', `${logits.length} values do not make rows of ${classes} classes`);
  const n = logits.length / classes;
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let max = -Infinity;
    for (let j = 0; j < classes; j++) max = Math.max(max, logits[i * classes + j]! / temperature);
    let sum = 0;
    for (let j = 0; j < classes; j++) sum += Math.exp(logits[i * classes + j]! / temperature - max);
    out[i] = temperature * (max + Math.log(sum));
  }
  return out;
}

/** Class means and the precision (inverse) of the shared covariance, from training features. */
export interface MahalanobisModel {
  dim: number;
  classes: number;
  /** [classes, dim] */
  means: Float64Array;
  /** [dim, dim] lower Cholesky factor L of the covariance (plus the ridge), Sigma = L L^T. */
  cholesky: Float64Array;
  /** Added to the covariance's diagonal: 1e-6 x its mean diagonal, so a singular covariance still factors. */
  ridge: number;
}

/** Fits class means and the shared (pooled, 1/n) covariance of `features` [n, dim] with their labels. */
export function fitMahalanobis(
  features: ArrayLike<number>,
  dim: number,
  labels: ArrayLike<number>,
  classes: number,
): MahalanobisModel {
  const n = labels.length;
  if (features.length !== n * dim)
    throw new InputError('features', `${features.length} values are not ${n} rows of ${dim} features`);
  const means = new Float64Array(classes * dim);
  const counts = new Float64Array(classes);
  for (let i = 0; i < n; i++) {
    const c = labels[i]!;
    if (!Number.isInteger(c) || c < 0 || c >= classes)
      throw new InputError('labels', `label ${i} is ${c}; expected a class from 0 to ${classes - 1}`);
    counts[c]! += 1;
    for (let d = 0; d < dim; d++) means[c * dim + d]! += features[i * dim + d]!;
  }
  for (let c = 0; c < classes; c++) {
    if (counts[c] === 0) throw new InputError('labels', `class ${c} has no training example`);
    for (let d = 0; d < dim; d++) means[c * dim + d]! /= counts[c]!;
  }
  const cov = new Float64Array(dim * dim);
  const centred = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const c = labels[i]!;
    for (let d = 0; d < dim; d++) centred[d] = features[i * dim + d]! - means[c * dim + d]!;
    for (let a = 0; a < dim; a++) {
      const va = centred[a]!;
      if (va === 0) continue;
      for (let b = 0; b <= a; b++) cov[a * dim + b]! += va * centred[b]!;
    }
  }
  let trace = 0;
  for (let a = 0; a < dim; a++) {
    for (let b = 0; b <= a; b++) cov[a * dim + b]! /= n;
    trace += cov[a * dim + a]!;
  }
  const ridge = 1e-6 * (trace / dim || 1);
  for (let a = 0; a < dim; a++) cov[a * dim + a]! += ridge;
  // Cholesky in place on the lower triangle.
  for (let j = 0; j < dim; j++) {
    let s = cov[j * dim + j]!;
    for (let k = 0; k < j; k++) s -= cov[j * dim + k]! ** 2;
    if (!(s > 0)) throw new InputError('features', 'their covariance is not positive definite even with a ridge');
    const pivot = Math.sqrt(s);
    cov[j * dim + j] = pivot;
    for (let i = j + 1; i < dim; i++) {
      let t = cov[i * dim + j]!;
      for (let k = 0; k < j; k++) t -= cov[i * dim + k]! * cov[j * dim + k]!;
      cov[i * dim + j] = t / pivot;
    }
  }
  for (let a = 0; a < dim; a++) for (let b = a + 1; b < dim; b++) cov[a * dim + b] = 0;
  return { dim, classes, means, cholesky: cov, ridge };
}

/** z with L z = v (forward substitution on the lower Cholesky factor), v read from `v` at `offset`. */
function whiten(cholesky: Float64Array, dim: number, v: ArrayLike<number>, offset: number, z: Float64Array) {
  for (let a = 0; a < dim; a++) {
    let t = v[offset + a]!;
    for (let b = 0; b < a; b++) t -= cholesky[a * dim + b]! * z[b]!;
    z[a] = t / cholesky[a * dim + a]!;
  }
}

/**
 * Minus the smallest squared Mahalanobis distance of each row of `features` [n, dim] to a class mean:
 * with Sigma = L L^T, (x - mu)^T Sigma^-1 (x - mu) = |L^-1 x - L^-1 mu|^2, so each row is whitened once
 * and compared with the whitened class means.
 */
export function mahalanobisScore(model: MahalanobisModel, features: ArrayLike<number>): Float64Array {
  const { dim, classes, means, cholesky } = model;
  if (features.length % dim !== 0)
    throw new InputError('features', `${features.length} values do not make rows of ${dim} features`);
  const n = features.length / dim;
  const whiteMeans = new Float64Array(classes * dim);
  for (let c = 0; c < classes; c++) whiten(cholesky, dim, means, c * dim, whiteMeans.subarray(c * dim, (c + 1) * dim));
  const out = new Float64Array(n);
  const z = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    whiten(cholesky, dim, features, i * dim, z);
    let best = Infinity;
    for (let c = 0; c < classes; c++) {
      let sq = 0;
      for (let a = 0; a < dim; a++) sq += (z[a]! - whiteMeans[c * dim + a]!) ** 2;
      if (sq < best) best = sq;
    }
    out[i] = -best;
  }
  return out;
}

/**
 * Minus the distance from each query to its k-th nearest training feature, every row scaled to unit
 * length first (copies: the inputs are left as they are).
 */
export function knnDistanceScore(train: FeatureChunks, queries: FeatureMatrix, k: number): Float64Array {
  const unitTrain = train.map((c) => ({ ...c, values: Float32Array.from(c.values) }));
  unitTrain.forEach(unitRows);
  const unitQueries = { ...queries, values: Float32Array.from(queries.values) };
  unitRows(unitQueries);
  const found = nearestNeighbors(unitTrain, unitQueries, { k, prune: false });
  const out = new Float64Array(queries.rows);
  for (let i = 0; i < queries.rows; i++) out[i] = -Math.sqrt(Math.max(0, found.distances[i * k + k - 1]!));
  return out;
}
