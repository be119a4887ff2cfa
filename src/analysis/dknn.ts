/**
 * Deep k-Nearest Neighbors (Papernot & McDaniel 2018): in each chosen layer, the k nearest training
 * points of an input's representation vote; the nonconformity of label j is the number of those
 * neighbours, over all layers, whose label is not j; a held-out calibration set, scored with its true
 * labels, turns nonconformity into empirical p-values: p_j = share of calibration scores >= the input's
 * score for j. Prediction = argmax p, credibility = max p, confidence = 1 - the second largest p.
 *
 * Features are preprocessed as the reference code (cleverhans' dknn.py) does before its search: each row
 * scaled to unit length, then the training rows' mean subtracted (`normalize: false` keeps raw features).
 * Its search is approximate (LSH); this one is exact (knn.ts).
 *
 * p-values: `standard` is the definition above over every calibration score. `reference` is what the
 * reference code computes: it drops calibration scores equal to 0 (`np.trim_zeros`) before counting,
 * which raises every p-value for a score above 0 (fewer scores in the denominator, none of them counted
 * in the numerator). Where every calibration score is 0 the reference form is undefined, and the
 * standard one is used. `finite` ((count + 1) / (n + 1)) and `smoothed` (ties broken at random, seeded)
 * are the conformal forms, and `mondrian` calibrates each class apart; `sets` turns p-values into
 * prediction sets at chosen error rates with their coverage.
 */
import { InputError } from '../errors.js';
import {
  calibrate as calibrateConformal,
  conformalPValues,
  countBelow,
  setSummaries,
  type ConformalCalibration,
  type ConformalForm,
  type SetSummary,
} from './conformal.js';
import {
  buildKnnIndex,
  nearestNeighbors,
  prunes,
  totalRows,
  type FeatureChunks,
  type FeatureMatrix,
  type KnnIndex,
} from './knn.js';

export const P_VALUE_FORMS = ['standard', 'reference', 'finite', 'smoothed'] as const;
export type PValueForm = (typeof P_VALUE_FORMS)[number];

export interface DknnOptions {
  /** Neighbours per layer (default 75, as the reference). */
  k?: number;
  /**
   * How p-values count calibration scores (default `standard`); `finite` and `smoothed` are the conformal
   * forms with a coverage guarantee (src/analysis/conformal.ts).
   */
  pValues?: PValueForm;
  /** Class-conditional (Mondrian) calibration: label j is scored against class j's calibration examples. */
  mondrian?: boolean;
  /** Seed of the smoothed form's tie-breaking draws (default 1234). */
  seed?: number;
  /** Unit length, then centred on the training mean, per layer (default true, as the reference). */
  normalize?: boolean;
  queryChunk?: number;
  /** The pruned k-NN search (knn.ts): `auto` (default) where it gains, false to compute every distance. */
  prune?: boolean | 'auto';
  onProgress?: (layer: string, done: number, total: number) => void;
}

/** Per layer, over every search so far: distances computed exactly, and query-training pairs. */
export interface SearchCount {
  exact: number;
  pairs: number;
  pruned: boolean;
}

export const DKNN_DEFAULTS = { k: 75, pValues: 'standard' as PValueForm, normalize: true, calibration: 750 };

/** One layer's training features, with its name. */
export interface LayerTrainFeatures {
  name: string;
  chunks: FeatureChunks;
}

export interface DknnResult {
  /** [n, classes] p-value of each label. */
  pValues: Float64Array;
  prediction: Int32Array;
  credibility: Float64Array;
  confidence: Float64Array;
  /** [n, classes] nonconformity of each label (k x layers - votes for it). */
  nonconformity: Int32Array;
  /** Per layer: [n, k] training indices of the neighbours, nearest first. */
  neighbors: Record<string, Int32Array>;
}

/** Unit rows, in place (rows of zeros stay zero). */
export function unitRows(m: FeatureMatrix): void {
  for (let r = 0; r < m.rows; r++) {
    const row = m.values.subarray(r * m.dim, (r + 1) * m.dim);
    let sum = 0;
    for (let j = 0; j < m.dim; j++) sum += row[j]! * row[j]!;
    const scale = sum > 0 ? 1 / Math.sqrt(sum) : 0;
    for (let j = 0; j < m.dim; j++) row[j]! *= scale;
  }
}

/** Column means of all chunks, in float64. */
export function columnMeans(chunks: FeatureChunks): Float64Array {
  const dim = chunks[0]?.dim ?? 0;
  const sums = new Float64Array(dim);
  for (const c of chunks) {
    for (let r = 0; r < c.rows; r++) {
      const base = r * dim;
      for (let j = 0; j < dim; j++) sums[j]! += c.values[base + j]!;
    }
  }
  const n = totalRows(chunks);
  return sums.map((s) => (n > 0 ? s / n : 0));
}

export function subtractRow(m: FeatureMatrix, mean: Float64Array): void {
  for (let r = 0; r < m.rows; r++) {
    const base = r * m.dim;
    for (let j = 0; j < m.dim; j++) m.values[base + j]! -= mean[j]!;
  }
}

/** Nonconformity [n, classes] from each layer's neighbour labels ([n, k] per layer). */
export function nonconformity(neighborLabels: Int32Array[], n: number, k: number, classes: number): Int32Array {
  const scores = new Int32Array(n * classes).fill(k * neighborLabels.length);
  for (const labels of neighborLabels) {
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < k; j++) scores[i * classes + labels[i * k + j]!]! -= 1;
    }
  }
  return scores;
}

/** The calibration scores the p-values count, sorted ascending (the reference form without its zeros). */
export function calibrationScores(scores: ArrayLike<number>, form: PValueForm): Float64Array {
  const sorted = Float64Array.from(scores).sort();
  if (form !== 'reference') return sorted;
  const firstNonZero = sorted.findIndex((s) => s !== 0);
  return firstNonZero < 0 ? sorted : sorted.subarray(firstNonZero);
}

/** Share of `sortedCalibration` at or above `score`. */
export function pValue(sortedCalibration: Float64Array, score: number): number {
  return (sortedCalibration.length - countBelow(sortedCalibration, score)) / sortedCalibration.length;
}

/** Prediction, credibility and confidence from [n, classes] p-values. */
export function conformalVerdict(pValues: Float64Array, classes: number) {
  const n = pValues.length / classes;
  const prediction = new Int32Array(n);
  const credibility = new Float64Array(n);
  const confidence = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let first = -1;
    let second = -1;
    let best = 0;
    for (let j = 0; j < classes; j++) {
      const p = pValues[i * classes + j]!;
      if (p > first) {
        second = first;
        first = p;
        best = j;
      } else if (p > second) second = p;
    }
    prediction[i] = best;
    credibility[i] = first;
    confidence[i] = 1 - Math.max(second, 0);
  }
  return { prediction, credibility, confidence };
}

/**
 * A fitted Deep k-NN: training features per layer, their labels, and the calibration scores. `predict`
 * runs the search for new inputs' features (the same layers, same order). With `normalize` (the default)
 * the training, calibration and query features are preprocessed in place: pass copies to keep the originals.
 */
export class DeepKnn {
  readonly k: number;
  readonly form: PValueForm;
  private readonly normalize: boolean;
  private readonly means: Float64Array[];
  private calibration: Float64Array = new Float64Array(0);
  /** The conformal forms' calibration (sorted scores, per class with `mondrian`); null for the others. */
  private conformal: ConformalCalibration | null = null;
  /** The pruned search's index of each layer's training features, built at its first search. */
  private readonly indexes: Array<KnnIndex | undefined> = [];
  /** Per layer: exact distances computed and pairs searched, over every search so far. */
  readonly searched: Record<string, SearchCount> = {};

  constructor(
    readonly layers: LayerTrainFeatures[],
    readonly trainLabels: Int32Array,
    readonly classes: number,
    private readonly options: DknnOptions = {},
  ) {
    this.k = options.k ?? DKNN_DEFAULTS.k;
    this.form = options.pValues ?? DKNN_DEFAULTS.pValues;
    this.normalize = options.normalize ?? DKNN_DEFAULTS.normalize;
    if (layers.length === 0) throw new InputError('layers', 'no layer was chosen');
    for (const layer of layers) {
      const rows = totalRows(layer.chunks);
      if (rows !== trainLabels.length)
        throw new InputError(layer.name, `has ${rows} training rows but there are ${trainLabels.length} labels`);
    }
    if (this.k > trainLabels.length)
      throw new InputError('k', `is ${this.k}, larger than the ${trainLabels.length} training points`);
    for (const label of trainLabels) {
      if (!Number.isInteger(label) || label < 0 || label >= classes)
        throw new InputError('labels', `training label ${label} is outside 0..${classes - 1}`);
    }
    this.means = layers.map((layer) => {
      if (!this.normalize) return new Float64Array(0);
      layer.chunks.forEach(unitRows);
      const mean = columnMeans(layer.chunks);
      layer.chunks.forEach((c) => subtractRow(c, mean));
      return mean;
    });
  }

  /** Preprocesses query features in place (one matrix per layer). */
  private prepare(features: FeatureMatrix[]): void {
    if (features.length !== this.layers.length)
      throw new InputError('features', `${features.length} layers given, the model has ${this.layers.length}`);
    if (!this.normalize) return;
    features.forEach((m, l) => {
      unitRows(m);
      subtractRow(m, this.means[l]!);
    });
  }

  private search(features: FeatureMatrix[]) {
    this.prepare(features);
    const n = features[0]!.rows;
    const neighbors: Record<string, Int32Array> = {};
    const labels = features.map((m, l) => {
      const layer = this.layers[l]!;
      if (m.rows !== n) throw new InputError(layer.name, `has ${m.rows} query rows, the first layer ${n}`);
      const prune = this.options.prune ?? 'auto';
      const rows = this.trainLabels.length;
      if (this.indexes[l] === undefined && prunes({ prune }, m.dim, rows))
        this.indexes[l] = buildKnnIndex(layer.chunks);
      const index = this.indexes[l];
      const found = nearestNeighbors(layer.chunks, m, {
        k: this.k,
        prune,
        ...(index ? { index } : {}),
        ...(this.options.queryChunk ? { queryChunk: this.options.queryChunk } : {}),
        onProgress: (done, total) => this.options.onProgress?.(layer.name, done, total),
      });
      const count = (this.searched[layer.name] ??= { exact: 0, pairs: 0, pruned: false });
      count.exact += found.exactPairs;
      count.pairs += n * rows;
      count.pruned ||= found.exactPairs < n * rows;
      neighbors[layer.name] = found.indices;
      return found.indices.map((i) => this.trainLabels[i]!);
    });
    return { n, neighbors, scores: nonconformity(labels, n, this.k, this.classes) };
  }

  /** Scores the calibration set with its true labels. Its features are preprocessed in place. */
  calibrate(features: FeatureMatrix[], labels: Int32Array): void {
    const { n, scores } = this.search(features);
    if (labels.length !== n) throw new InputError('calibration labels', `${labels.length} labels for ${n} rows`);
    if (n === 0) throw new InputError('calibration', 'is empty');
    const own = Array.from(labels, (y, i) => scores[i * this.classes + y]!);
    this.calibration = calibrationScores(own, this.form);
    const conformal = this.form === 'finite' || this.form === 'smoothed';
    if (this.options.mondrian && !conformal)
      throw new InputError('mondrian', "needs the conformal p-values: pValues 'finite' or 'smoothed'");
    this.conformal = conformal ? calibrateConformal(own, labels, this.classes, this.options.mondrian ?? false) : null;
  }

  /** Prediction sets at each error rate, with coverage where `labels` are given (a conformal form only). */
  sets(result: DknnResult, epsilons: readonly number[], labels: ArrayLike<number> | null = null): SetSummary[] {
    return setSummaries(result.pValues, this.classes, labels, epsilons);
  }

  /** The calibration scores in use, ascending. */
  get calibrationScores(): Float64Array {
    return this.calibration;
  }

  /** p-values and the conformal verdict of each query. Features are preprocessed in place. */
  predict(features: FeatureMatrix[]): DknnResult {
    if (this.calibration.length === 0) throw new Error('DeepKnn.predict: calibrate first');
    const { n, neighbors, scores } = this.search(features);
    let pValues: Float64Array;
    if (this.conformal) {
      const form = this.form as ConformalForm;
      pValues = conformalPValues(scores, this.classes, this.conformal, form, this.options.seed ?? 1234);
    } else {
      pValues = new Float64Array(n * this.classes);
      for (let i = 0; i < scores.length; i++) pValues[i] = pValue(this.calibration, scores[i]!);
    }
    return { pValues, nonconformity: scores, neighbors, ...conformalVerdict(pValues, this.classes) };
  }
}
