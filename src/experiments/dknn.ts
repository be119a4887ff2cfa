/**
 * The Deep k-NN study of a trained run (`snnl dknn RUN_DIR`): Deep k-NN over the network's layers with
 * the training split as neighbours, calibrated on the first `calibration` test images and evaluated on
 * the rest; then, for each outlier set and each FGSM strength, how well credibility (and, as the usual
 * baseline, the maximum softmax probability) tells the clean test images from them (AUROC, FPR at 95%
 * TPR). Also the adversarial-gradient study of the paper's code: how much sign(d CE / d input) clusters
 * by true label (SNNL at the optimal temperature, k-NN purity).
 */
import { pixelsOf } from '../data/outliers.js';
import { InputError } from '../errors.js';
import { normalizationFor } from '../training/evaluate.js';
import { loadTrainedNetwork, provenance } from '../training/run-store.js';
import { permutation, seededRandom } from '../random.js';
import { DeepKnn, DKNN_DEFAULTS, type PValueForm } from '../analysis/dknn.js';
import { histogram, reliability, type ReliabilityBin } from '../analysis/metrics.js';
import { setSummaries } from '../analysis/conformal.js';
import { joinChunks, layerIndices, outputNames, probe } from '../analysis/probe.js';
import { gradientStudy, panelExample, type PanelExample } from './dknn-panel.js';
import { concatSets, querySets, range } from './dknn-queries.js';
import {
  DETECTOR_DEFAULTS,
  detectorScores,
  fitDetectors,
  separation,
  sliceScores,
  type DetectorInfo,
  type DetectorNumbers,
} from './dknn-detectors.js';

export type { PanelExample } from './dknn-panel.js';

export interface DknnStudyOptions {
  layers?: string[];
  k?: number;
  calibration?: number;
  pValues?: PValueForm;
  normalize?: boolean;
  /** Images per outlier set and per FGSM strength (default 2000). */
  outliers?: number;
  eps?: number[];
  /** Test images whose input gradients are studied (default 500). */
  gradientSample?: number;
  seed?: number;
  /** Training images used as neighbours (default all): for quick looks and tests. */
  trainSubset?: number;
  /** The pruned k-NN search: `auto` (default), or false to compute every distance. */
  prune?: boolean | 'auto';
  /** Error rates of the prediction sets (default 0.01, 0.05, 0.1). */
  epsilons?: number[];
  /** Class-conditional (Mondrian) calibration (needs pValues 'finite' or 'smoothed'). */
  mondrian?: boolean;
  /** Steps of the PGD attack at each of `eps` (default 10; 0 leaves PGD out). */
  pgdSteps?: number;
  /** k of the k-th nearest-neighbour distance detector (default 50). */
  knnK?: number;
  /** Bootstrap replicates of each AUROC (default 200; 0: none). */
  replicates?: number;
}

export const DKNN_STUDY_DEFAULTS = {
  outliers: 2000,
  eps: [0.1, 0.25],
  gradientSample: 500,
  seed: 1234,
  epsilons: [0.01, 0.05, 0.1],
  pgdSteps: 10,
};

/** Error rates of the calibration curve (coverage of the clean set's prediction sets against 1 - epsilon). */
export const CALIBRATION_GRID = Array.from({ length: 20 }, (_, i) => Math.round((i + 1) * 0.025 * 1000) / 1000);

/** A prediction-set summary as stored: coverage null where the set has no true labels. */
export interface StoredSetSummary {
  epsilon: number;
  coverage: number | null;
  meanSize: number;
  empty: number;
}

export interface ScoreSummary {
  mean: number;
  /** Counts in 10 bins over [0, 1]. */
  histogram: number[];
}

export interface SetResult {
  name: string;
  description: string;
  count: number;
  /** Deep k-NN and network accuracy against the set's labels (null: the set has none, or they mean nothing). */
  dknnAccuracy: number | null;
  networkAccuracy: number | null;
  credibility: ScoreSummary;
  softmax: ScoreSummary;
  /**
   * Clean test images (positive) against this set, per detector (credibility, softmax, energy,
   * mahalanobis, knn: those the network allows): null for the clean set itself.
   */
  auroc: (DetectorNumbers & { credibility: number; softmax: number }) | null;
  fpr95: (DetectorNumbers & { credibility: number; softmax: number }) | null;
  /** Bootstrap replicates of each AUROC (resamples of the clean and this set's examples; see dknn-summary). */
  aurocReplicates?: Partial<Record<string, number[]>>;
  /** Prediction sets at each error rate: coverage of labelled sets, mean size, share of empty sets. */
  conformal: StoredSetSummary[];
}

export interface DknnStudy {
  run: string;
  dataset: string;
  model: string;
  factor: number;
  seed: number;
  layers: string[];
  k: number;
  pValues: PValueForm;
  mondrian: boolean;
  normalize: boolean;
  calibration: number;
  trainImages: number;
  backend: string;
  seconds: { features: number; search: number; detectors?: number; total: number };
  /** Per layer: the share of query-training distances computed (below 1: the pruned search). */
  exactShare?: Record<string, number>;
  sets: SetResult[];
  /** The detectors beside credibility: the penultimate layer they read, k, and any left out (with why). */
  detectors: DetectorInfo;
  /** PGD's steps and step size (a fraction of eps) for the pgd-* sets. */
  pgd: { steps: number; stepSize: string } | null;
  bootstrap: { replicates: number; seed: number };
  /** The clean set's prediction sets over a grid of error rates: coverage against 1 - epsilon. */
  calibrationCurve: Array<{ epsilon: number; coverage: number; meanSize: number }>;
  reliability: Record<string, ReliabilityBin[]>;
  gradients: {
    images: number;
    snnlOptimal: number;
    temperature: number;
    ceiling: number;
    knnPurity: number;
    k: number;
  };
  panel: PanelExample;
  /** The code that produced this study (commit and dirty flag, versions, time) and the network's own. */
  provenance: ReturnType<typeof provenance>;
  networkCommit: { commit: string | null; dirty: boolean | null };
}

function summary(scores: ArrayLike<number>): ScoreSummary {
  let sum = 0;
  for (let i = 0; i < scores.length; i++) sum += scores[i]!;
  return { mean: scores.length > 0 ? sum / scores.length : NaN, histogram: histogram(scores) };
}

function accuracy(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  let hits = 0;
  for (let i = 0; i < labels.length; i++) if (predicted[i] === labels[i]) hits++;
  return labels.length > 0 ? hits / labels.length : NaN;
}

function argmaxRows(values: Float32Array, classes: number): { prediction: Int32Array; max: Float64Array } {
  const n = values.length / classes;
  const prediction = new Int32Array(n);
  const max = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < classes; j++) if (values[i * classes + j]! > values[i * classes + best]!) best = j;
    prediction[i] = best;
    max[i] = values[i * classes + best]!;
  }
  return { prediction, max };
}

/** Validates the options against the run before any work (layer names: layerIndices); returns them filled in. */
export function checkStudyOptions(options: DknnStudyOptions, testCount: number, trainCount: number, names: string[]) {
  const k = options.k ?? DKNN_DEFAULTS.k;
  const calibration = options.calibration ?? DKNN_DEFAULTS.calibration;
  const train = options.trainSubset ?? trainCount;
  const outliers = options.outliers ?? DKNN_STUDY_DEFAULTS.outliers;
  if (!Number.isInteger(train) || train < 1 || train > trainCount)
    throw new InputError('trainSubset', `must be a whole number from 1 to ${trainCount}, got ${train}`);
  if (!Number.isInteger(k) || k < 1) throw new InputError('k', `must be a whole number of at least 1, got ${k}`);
  if (k > train) throw new InputError('k', `is ${k}, larger than the ${train} training images`);
  if (!Number.isInteger(calibration) || calibration < 1 || calibration >= testCount)
    throw new InputError(
      'calibration',
      `must be a whole number from 1 to ${testCount - 1} (the rest of the ${testCount} test images are evaluated), got ${calibration}`,
    );
  if (!Number.isInteger(outliers) || outliers < 1)
    throw new InputError('outliers', `must be a whole number of at least 1, got ${outliers}`);
  for (const eps of options.eps ?? DKNN_STUDY_DEFAULTS.eps) {
    if (!(eps > 0 && eps <= 1)) throw new InputError('eps', `each must be in (0, 1], got ${eps}`);
  }
  const pgdSteps = options.pgdSteps ?? DKNN_STUDY_DEFAULTS.pgdSteps;
  if (!Number.isInteger(pgdSteps) || pgdSteps < 0)
    throw new InputError('pgdSteps', `must be a whole number from 0 (0: no PGD), got ${pgdSteps}`);
  const knnK = options.knnK ?? DETECTOR_DEFAULTS.knnK;
  if (!Number.isInteger(knnK) || knnK < 1 || knnK > train)
    throw new InputError('knnK', `must be a whole number from 1 to ${train} (the training images), got ${knnK}`);
  const replicates = options.replicates ?? DETECTOR_DEFAULTS.replicates;
  if (!Number.isInteger(replicates) || replicates < 0)
    throw new InputError('replicates', `must be a whole number from 0, got ${replicates}`);
  const layers = options.layers ?? names;
  if (layers.length === 0) throw new InputError('layers', 'no layer was chosen');
  return { k, calibration, train, outliers, layers, pgdSteps, knnK, replicates };
}

/** Runs the study on the run in `runDir` (nothing is written here; the command line writes the files). */
export function dknnStudy(
  runDir: string,
  options: DknnStudyOptions,
  backend: string,
  log: (line: string) => void,
  progress?: (label: string, done: number, total: number) => void,
): { study: DknnStudy; gradientSigns: { values: Float32Array; labels: Int32Array } } {
  const started = performance.now();
  const { net, dataset, stored } = loadTrainedNetwork(runDir);
  try {
    if (net.kind !== 'classifier') throw new InputError(runDir, 'Deep k-NN needs a classifier run, not an autoencoder');
    const names = outputNames(net);
    const checked = checkStudyOptions(options, dataset.test.count, dataset.train.count, names);
    const { k, calibration, layers } = checked;
    const indices = layerIndices(net, layers);
    // The detectors read the penultimate layer (the last hidden one): probed beside the Deep k-NN layers.
    const penultimate = names.at(-2) ?? names.at(-1)!;
    const penIndex = layerIndices(net, [penultimate])[0]!;
    const probed = indices.includes(penIndex) ? indices : [...indices, penIndex];
    const penAt = probed.indexOf(penIndex);
    const seed = options.seed ?? DKNN_STUDY_DEFAULTS.seed;
    const pForm = options.pValues ?? DKNN_DEFAULTS.pValues;
    const normalize = options.normalize ?? DKNN_DEFAULTS.normalize;
    const eps = options.eps ?? DKNN_STUDY_DEFAULTS.eps;
    const shape = dataset.imageShape;
    const norm = normalizationFor(net, dataset);
    const classes = dataset.classes;

    // Training features, in chunks (the k-NN search's outer loop).
    const trainIdx = range(0, checked.train);
    const trainSet = pixelsOf(dataset.train, shape, trainIdx);
    log(`features of ${trainIdx.length} training images in ${layers.length} layers (${layers.join(', ')})`);
    const trainProbe = probe(net, trainSet, shape, norm, probed, 4096);
    const dims = trainProbe.features.map((c) => c[0]!.dim);
    log(`  dimensions: ${layers.map((l, i) => `${l} ${dims[i]}`).join(', ')}`);
    // Fitted before DeepKnn, which scales its features in place; the penultimate chunks copied if shared.
    const penTrain = indices.includes(penIndex)
      ? trainProbe.features[penAt]!.map((c) => ({ ...c, values: Float32Array.from(c.values) }))
      : trainProbe.features[penAt]!;
    const fitStart = performance.now();
    const fitted = fitDetectors(
      penultimate,
      penTrain,
      trainSet.labels,
      classes,
      trainProbe.logits !== null,
      checked.knnK,
    );
    const fitSeconds = (performance.now() - fitStart) / 1000;
    const model = new DeepKnn(
      layers.map((name, l) => ({ name, chunks: trainProbe.features[l]! })),
      Int32Array.from(trainSet.labels),
      classes,
      {
        k,
        pValues: pForm,
        mondrian: options.mondrian ?? false,
        seed,
        normalize,
        prune: options.prune ?? 'auto',
        onProgress: (layer, done, total) => progress?.(`k-NN ${layer}`, done, total),
      },
    );
    const featuresSeconds = (performance.now() - started) / 1000;

    const calSet = pixelsOf(dataset.test, shape, range(0, calibration));
    const testSet = pixelsOf(dataset.test, shape, range(calibration, dataset.test.count));
    log(`calibration: the first ${calibration} test images; evaluation: the other ${testSet.count}`);
    const calProbe = probe(net, calSet, shape, norm, indices);
    const searchStart = performance.now();
    model.calibrate(calProbe.features.map(joinChunks), calSet.labels);

    // Query sets: clean test images, outliers, adversarial images.
    const few = Math.min(checked.outliers, testSet.count);
    const sample = permutation(testSet.count, seededRandom(seed)).slice(0, few);
    const sampled = pixelsOf(
      dataset.test,
      shape,
      Array.from(sample, (i) => i + calibration),
    );
    const queries = querySets(
      { net, dataset, shape, norm, seed, eps, pgdSteps: checked.pgdSteps, few },
      testSet,
      sampled,
      log,
      progress,
    );
    log(`query sets: ${queries.map((q) => `${q.name} ${q.set.count}`).join(', ')}`);
    const all = concatSets(queries.map((q) => q.set));
    const allProbe = probe(net, all, shape, norm, probed);
    // The penultimate features (a copy where DeepKnn also reads them: it scales its queries in place).
    const penQueries = joinChunks(allProbe.features[penAt]!);
    const penCopy = indices.includes(penIndex)
      ? { ...penQueries, values: Float32Array.from(penQueries.values) }
      : penQueries;
    const features = allProbe.features.slice(0, indices.length).map(joinChunks);
    const result = model.predict(features);
    const searchSeconds = (performance.now() - searchStart) / 1000;
    const soft = argmaxRows(allProbe.probabilities, classes);
    const detectorStart = performance.now();
    const scores = detectorScores(fitted, penCopy, allProbe.logits, classes, result.credibility, soft.max);
    const detectorSeconds = fitSeconds + (performance.now() - detectorStart) / 1000;

    let offset = 0;
    const slices = queries.map((q) => {
      const s = { q, start: offset, end: offset + q.set.count };
      offset += q.set.count;
      return s;
    });
    const clean = slices[0]!;
    const part = (a: ArrayLike<number>, s: { start: number; end: number }) =>
      Array.prototype.slice.call(a, s.start, s.end) as number[];
    const cleanScores = sliceScores(scores, clean.start, clean.end);
    const replicates = checked.replicates;
    const sets: SetResult[] = slices.map((s) => {
      const cred = part(result.credibility, s);
      const sm = part(soft.max, s);
      const labels = s.q.set.labels;
      const sep = s.q.outlier
        ? separation(cleanScores, sliceScores(scores, s.start, s.end), s.q.name, seed, replicates)
        : null;
      return {
        name: s.q.name,
        description: s.q.description,
        count: s.q.set.count,
        dknnAccuracy: s.q.labelled ? accuracy(part(result.prediction, s), labels) : null,
        networkAccuracy: s.q.labelled ? accuracy(part(soft.prediction, s), labels) : null,
        credibility: summary(cred),
        softmax: summary(sm),
        auroc: sep ? (sep.auroc as SetResult['auroc']) : null,
        fpr95: sep ? (sep.fpr95 as SetResult['fpr95']) : null,
        ...(sep && replicates > 0 ? { aurocReplicates: sep.aurocReplicates } : {}),
        conformal: setSummaries(
          result.pValues.subarray(s.start * classes, s.end * classes),
          classes,
          s.q.labelled ? labels : null,
          options.epsilons ?? DKNN_STUDY_DEFAULTS.epsilons,
        ).map((c) => ({ ...c, coverage: Number.isNaN(c.coverage) ? null : c.coverage })),
      };
    });
    const calibrationCurve = setSummaries(
      result.pValues.subarray(clean.start * classes, clean.end * classes),
      classes,
      clean.q.set.labels,
      CALIBRATION_GRID,
    ).map((c) => ({ epsilon: c.epsilon, coverage: c.coverage, meanSize: c.meanSize }));
    const reliabilityOf = (s: (typeof slices)[number]) => {
      const predicted = part(result.prediction, s);
      return reliability(
        part(result.credibility, s),
        predicted.map((p, i) => p === s.q.set.labels[i]),
      );
    };
    const reliabilities: Record<string, ReliabilityBin[]> = {};
    for (const s of slices) if (s.q.labelled) reliabilities[s.q.name] = reliabilityOf(s);

    const panel = panelExample(result, slices, queries, sample, calibration, layers, eps.at(-1));
    const gradients = gradientStudy(
      net,
      dataset,
      norm,
      options.gradientSample ?? DKNN_STUDY_DEFAULTS.gradientSample,
      calibration,
      seed,
    );
    const study: DknnStudy = {
      run: runDir,
      dataset: dataset.name,
      model: stored.config.model,
      factor: stored.config.factor,
      seed: stored.config.seed,
      layers,
      k,
      pValues: pForm,
      mondrian: options.mondrian ?? false,
      normalize,
      calibration,
      trainImages: trainIdx.length,
      backend,
      seconds: {
        features: featuresSeconds,
        search: searchSeconds,
        detectors: detectorSeconds,
        total: (performance.now() - started) / 1000,
      },
      exactShare: Object.fromEntries(Object.entries(model.searched).map(([name, c]) => [name, c.exact / c.pairs])),
      sets,
      detectors: fitted.info,
      pgd: checked.pgdSteps > 0 ? { steps: checked.pgdSteps, stepSize: `2.5 eps / ${checked.pgdSteps}` } : null,
      bootstrap: { replicates, seed },
      calibrationCurve,
      reliability: reliabilities,
      gradients: gradients.summary,
      panel,
      provenance: provenance(backend),
      networkCommit: { commit: stored.commit ?? null, dirty: stored.dirty ?? null },
    };
    return { study, gradientSigns: { values: gradients.signs, labels: gradients.labels } };
  } finally {
    net.model.dispose();
  }
}
