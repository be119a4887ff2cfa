/**
 * Retrieval metrics beside SNNL, as pytorch-metric-learning's AccuracyCalculator defines them with the
 * query set as its own reference set: each row queries the others (never itself).
 *
 * - precision@1: the share of queries whose nearest other row has their label.
 * - MAP@R (Musgrave et al. 2020): with R the number of other rows of the query's class, the mean over
 *   the first R retrieved rows of precision@i at each relevant position i, divided by R.
 * Queries whose class has no other row ("lone" queries) are left out, as AccuracyCalculator leaves them
 * out (and as SNNL's stable form does). Neighbours are ranked by the distance SNNL uses: Euclidean and
 * squared Euclidean give one ranking; cosine ranks rows scaled to unit length. Ties go to the lower index.
 */
import type { DistanceName } from '../loss/distance.js';
import { InputError } from '../errors.js';
import { nearestNeighbors, type FeatureMatrix } from './knn.js';
import { unitRows } from './dknn.js';

/** Neighbour lists above this many entries (rows x (largest class - 1)) are not searched: too much memory. */
export const RETRIEVAL_MAX_ENTRIES = 5e7;

export interface RetrievalMetrics {
  precisionAt1: number;
  mapAtR: number;
  /** Queries counted (rows whose class has another row). */
  queries: number;
}

/** precision@1 and MAP@R of `features` ([rows, dim]) with `labels`, by `distance`. */
export function retrievalMetrics(
  features: FeatureMatrix,
  labels: ArrayLike<number>,
  distance: DistanceName = 'squared-euclidean',
): RetrievalMetrics {
  const n = features.rows;
  if (labels.length !== n) throw new InputError('labels', `${labels.length} labels for ${n} rows`);
  const counts = new Map<number, number>();
  for (let i = 0; i < n; i++) counts.set(labels[i]!, (counts.get(labels[i]!) ?? 0) + 1);
  let maxR = 0;
  for (const c of counts.values()) maxR = Math.max(maxR, c - 1);
  if (maxR === 0) return { precisionAt1: NaN, mapAtR: NaN, queries: 0 };
  const rows: FeatureMatrix =
    distance === 'cosine' ? { ...features, values: Float32Array.from(features.values) } : features;
  if (distance === 'cosine') unitRows(rows);
  // The row itself comes back among the first (distance 0), so one more than the largest R.
  const k = Math.min(n, maxR + 1);
  if (n * k > RETRIEVAL_MAX_ENTRIES)
    throw new InputError(
      'features',
      `${n} rows with classes of up to ${maxR + 1} make ${n * k} neighbour entries (above ${RETRIEVAL_MAX_ENTRIES}); measure a sample`,
    );
  const found = nearestNeighbors([rows], rows, { k, prune: false });
  let p1 = 0;
  let map = 0;
  let queries = 0;
  for (let i = 0; i < n; i++) {
    const label = labels[i]!;
    const r = counts.get(label)! - 1;
    if (r === 0) continue;
    queries++;
    let seen = 0;
    let hits = 0;
    let sum = 0;
    for (let j = 0; j < k && seen < r; j++) {
      const other = found.indices[i * k + j]!;
      if (other === i) continue;
      seen++;
      if (labels[other] === label) {
        hits++;
        sum += hits / seen;
        if (seen === 1) p1++;
      }
    }
    map += sum / r;
  }
  return { precisionAt1: p1 / queries, mapAtR: map / queries, queries };
}
