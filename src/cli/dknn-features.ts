/**
 * `snnl dknn-features DIR`: Deep k-NN on features a user computed elsewhere (a PyTorch network, say),
 * read from .npy files named by split and layer:
 *
 *   train.<layer>.npy        [n_train, ...]  one per layer (any number of layers, any shape per row)
 *   train.labels.npy         [n_train]       class ids
 *   calibration.<layer>.npy  [n_cal, ...]    the same layers, held out from training
 *   calibration.labels.npy   [n_cal]
 *   test.<layer>.npy         [n_test, ...]   the inputs to judge
 *   test.labels.npy          [n_test]        optional: accuracy and prediction-set coverage when given
 *   outlier.<layer>.npy      [n_out, ...]    optional: inputs that should look unfamiliar (an OOD set)
 *   <split>.logits.npy       [n, classes]    optional: the network's logits, for the energy score
 *
 * Besides Deep k-NN, the detectors of `snnl dknn` on the detector layer (--detector-layer; default the
 * last layer by name that is not `logits`): Mahalanobis and the k-th NN distance, and energy from
 * logits.npy when given. Writes prediction.npy, credibility.npy, confidence.npy, p-values.npy
 * ([n_test, classes]) and each detector's test scores (<detector>.npy) to --out, with dknn.json (the
 * settings, prediction sets at --epsilon, and with an outlier split each detector's AUROC and FPR95).
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { DeepKnn, DKNN_DEFAULTS, type PValueForm } from '../analysis/dknn.js';
import type { FeatureMatrix } from '../analysis/knn.js';
import { histogram } from '../analysis/metrics.js';
import { describeBackend, useBackend } from '../engine/backend.js';
import { InputError } from '../errors.js';
import { readArrayFile } from '../io/arrays.js';
import { encodeNpy } from '../io/npy.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { setSummaries } from '../analysis/conformal.js';
import { DETECTOR_LABELS, DETECTORS, detectorScores, fitDetectors, separation } from '../experiments/dknn-detectors.js';
import { DKNN_STUDY_DEFAULTS } from '../experiments/dknn.js';

const SPLITS = ['train', 'calibration', 'test', 'outlier'] as const;
type Split = (typeof SPLITS)[number];

export interface FeatureFiles {
  layers: string[];
  /** By split: the file of each layer, and of the labels (test labels may be missing; outlier files too). */
  files: Record<Split, { layers: string[]; labels?: string } | undefined>;
}

/** The files of DIR by split and layer, checked for completeness before anything is read. */
export function featureFiles(dir: string): FeatureFiles {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'is not a folder');
  const names = readdirSync(dir).filter((n) => n.endsWith('.npy'));
  const layersOf = (split: string) =>
    names
      .filter((n) => n.startsWith(`${split}.`) && n !== `${split}.labels.npy`)
      .map((n) => n.slice(split.length + 1, -4))
      .sort();
  const layers = layersOf('train');
  if (layers.length === 0)
    throw new InputError(
      dir,
      'holds no train.<layer>.npy (expected train.<layer>.npy, train.labels.npy, calibration.*, test.*)',
    );
  const files = {} as FeatureFiles['files'];
  for (const split of SPLITS) {
    const here = layersOf(split);
    if (split === 'outlier' && here.length === 0) continue;
    if (here.join(',') !== layers.join(','))
      throw new InputError(dir, `${split} has layers ${here.join(', ') || 'none'}, train has ${layers.join(', ')}`);
    const labels = names.includes(`${split}.labels.npy`) ? join(dir, `${split}.labels.npy`) : undefined;
    if (!labels && (split === 'train' || split === 'calibration'))
      throw new InputError(dir, `has no ${split}.labels.npy`);
    files[split] = { layers: layers.map((l) => join(dir, `${split}.${l}.npy`)), ...(labels ? { labels } : {}) };
  }
  return { layers, files };
}

function readMatrix(path: string): FeatureMatrix {
  const array = readArrayFile(path);
  if (array.shape.length < 1) throw new InputError(path, 'expected one row per example, got a scalar');
  const rows = array.shape[0]!;
  const dim = array.shape.slice(1).reduce((a, b) => a * b, 1);
  return { rows, dim, values: Float32Array.from(array.values) };
}

function readLabels(path: string, rows: number, subject: string): Int32Array {
  const array = readArrayFile(path);
  if (array.shape.length !== 1)
    throw new InputError(path, `expected a 1-D array of class ids, got shape [${array.shape.join(', ')}]`);
  if (array.shape[0] !== rows)
    throw new InputError(path, `has ${array.shape[0]} labels, but ${subject} has ${rows} rows`);
  return Int32Array.from(array.values, (v, i) => {
    if (!Number.isInteger(v) || v < 0)
      throw new InputError(path, `label ${i} is ${v}; expected a class id (0, 1, ...)`);
    return v;
  });
}

export interface FeatureDknnOptions {
  k?: number;
  pValues?: PValueForm;
  normalize?: boolean;
  out: string;
  backend?: string;
  /** The layer the Mahalanobis and k-th NN detectors read (default: the last by name that is not `logits`). */
  detectorLayer?: string;
  knnK?: number;
  epsilons?: number[];
}

export async function dknnFeaturesCommand(dir: string, options: FeatureDknnOptions, log: (l: string) => void) {
  const found = featureFiles(dir);
  const detectorLayer = options.detectorLayer ?? found.layers.filter((l) => l !== 'logits').at(-1) ?? found.layers[0]!;
  if (!found.layers.includes(detectorLayer))
    throw new InputError('--detector-layer', `no layer "${detectorLayer}"; the layers are ${found.layers.join(', ')}`);
  const load = (split: Split) => {
    const files = found.files[split]!;
    const features = files.layers.map(readMatrix);
    const rows = features[0]!.rows;
    features.forEach((f, l) => {
      if (f.rows !== rows) throw new InputError(files.layers[l]!, `has ${f.rows} rows, ${files.layers[0]} has ${rows}`);
    });
    const labels = files.labels ? readLabels(files.labels, rows, files.layers[0]!) : undefined;
    return { features, labels, rows };
  };
  const train = load('train');
  const calibration = load('calibration');
  const test = load('test');
  const outlier = found.files.outlier ? load('outlier') : undefined;
  // The largest label + 1 (a loop: spreading 60,000 labels into Math.max can overflow the call stack).
  let classes = 0;
  for (const labels of [train.labels!, calibration.labels!, test.labels ?? new Int32Array(0)])
    for (const y of labels) classes = Math.max(classes, y + 1);
  await useBackend(options.backend);
  const started = performance.now();
  const model = new DeepKnn(
    found.layers.map((name, l) => ({ name, chunks: [train.features[l]!] })),
    train.labels!,
    classes,
    {
      ...(options.k ? { k: options.k } : {}),
      ...(options.pValues ? { pValues: options.pValues } : {}),
      normalize: options.normalize ?? true,
    },
  );
  if (calibration.rows === 0) throw new InputError(found.files.calibration!.layers[0]!, 'has no rows');
  // The detectors read their layer before DeepKnn scales the features in place.
  const at = found.layers.indexOf(detectorLayer);
  const logitsAt = found.layers.indexOf('logits');
  if (logitsAt >= 0 && train.features[logitsAt]!.dim !== classes)
    throw new InputError(
      found.files.train!.layers[logitsAt]!,
      `has ${train.features[logitsAt]!.dim} values per row; logits need one per class (${classes})`,
    );
  const copy = (m: FeatureMatrix): FeatureMatrix => ({ ...m, values: Float32Array.from(m.values) });
  const detectorTrain = [copy(train.features[at]!)];
  const queries = [test, ...(outlier ? [outlier] : [])].map((q) => ({
    features: copy(q.features[at]!),
    logits: logitsAt >= 0 ? Float32Array.from(q.features[logitsAt]!.values) : null,
  }));
  const fitted = fitDetectors(detectorLayer, detectorTrain, train.labels!, classes, logitsAt >= 0, options.knnK);
  model.calibrate(calibration.features, calibration.labels!);
  const result = model.predict(test.features);
  const outlierResult = outlier ? model.predict(outlier.features) : undefined;
  const maxProbability = (logits: Float32Array | null) => {
    if (!logits) return null;
    const n = logits.length / classes;
    return Float64Array.from({ length: n }, (_, i) => {
      let max = -Infinity;
      for (let j = 0; j < classes; j++) max = Math.max(max, logits[i * classes + j]!);
      let sum = 0;
      for (let j = 0; j < classes; j++) sum += Math.exp(logits[i * classes + j]! - max);
      return 1 / sum;
    });
  };
  const scoresOf = (k: number, credibility: ArrayLike<number>) => {
    const q = queries[k]!;
    const softmax = maxProbability(q.logits);
    const all = detectorScores(fitted, q.features, q.logits, classes, credibility, softmax ?? []);
    return { ...all, softmax: softmax };
  };
  const testScores = scoresOf(0, result.credibility);
  const outlierScores = outlierResult ? scoresOf(1, outlierResult.credibility) : undefined;
  const sep = outlierScores ? separation(testScores, outlierScores, 'outlier', 1234) : undefined;
  const seconds = (performance.now() - started) / 1000;
  let hits = 0;
  if (test.labels) for (let i = 0; i < test.rows; i++) if (result.prediction[i] === test.labels[i]) hits++;
  const mean = result.credibility.reduce((a, v) => a + v, 0) / Math.max(1, test.rows);
  const summary = {
    dir,
    layers: found.layers,
    k: model.k,
    pValues: model.form,
    normalize: options.normalize ?? DKNN_DEFAULTS.normalize,
    classes,
    train: train.rows,
    calibration: calibration.rows,
    test: test.rows,
    accuracy: test.labels ? hits / test.rows : null,
    meanCredibility: mean,
    credibilityHistogram: histogram(result.credibility),
    predictionSets: setSummaries(
      result.pValues,
      classes,
      test.labels ?? null,
      options.epsilons ?? DKNN_STUDY_DEFAULTS.epsilons,
    ).map((c) => ({ ...c, coverage: Number.isNaN(c.coverage) ? null : c.coverage })),
    detectors: fitted.info,
    outlier: sep ? { rows: outlier!.rows, auroc: sep.auroc, fpr95: sep.fpr95 } : null,
    backend: describeBackend(),
    seconds,
  };
  mkdirSync(options.out, { recursive: true });
  writeAtomic(join(options.out, 'prediction.npy'), encodeNpy(result.prediction, [test.rows], 'int32'));
  writeAtomic(join(options.out, 'credibility.npy'), encodeNpy(result.credibility, [test.rows], 'float64'));
  writeAtomic(join(options.out, 'confidence.npy'), encodeNpy(result.confidence, [test.rows], 'float64'));
  writeAtomic(join(options.out, 'p-values.npy'), encodeNpy(result.pValues, [test.rows, classes], 'float64'));
  const written = ['prediction.npy', 'credibility.npy', 'confidence.npy', 'p-values.npy'];
  for (const d of ['energy', 'mahalanobis', 'knn'] as const) {
    const values = testScores[d];
    if (values === null) continue;
    writeAtomic(join(options.out, `${d}.npy`), encodeNpy(Float64Array.from(values), [test.rows], 'float64'));
    written.push(`${d}.npy`);
  }
  writeJsonAtomic(join(options.out, 'dknn.json'), summary);
  log(`written: ${options.out}/${[...written, 'dknn.json'].join(', ')}`);
  return summary;
}

export function formatFeatureDknn(s: Awaited<ReturnType<typeof dknnFeaturesCommand>>): string {
  return [
    `Deep k-NN of ${s.dir}: layers ${s.layers.join(', ')}; k ${s.k}; ${s.train} training rows, ${s.calibration} calibration, ${s.test} test; ${s.classes} classes`,
    `p-values ${s.pValues}; features ${s.normalize ? 'unit length, centred' : 'raw'}; ${s.backend}; ${s.seconds.toFixed(1)} s`,
    s.accuracy === null ? 'accuracy: no test.labels.npy' : `accuracy ${(100 * s.accuracy).toFixed(2)}%`,
    `mean credibility ${s.meanCredibility.toFixed(3)}; credibility histogram (10 bins over [0, 1]): ${s.credibilityHistogram.join(' ')}`,
    `prediction sets: ${s.predictionSets
      .map(
        (c) =>
          `eps ${c.epsilon}: coverage ${c.coverage === null ? '-' : `${(100 * c.coverage).toFixed(1)}%`}, mean size ${c.meanSize.toFixed(2)}`,
      )
      .join('; ')}`,
    `detectors on ${s.detectors.penultimate} (${s.detectors.dim} features, k-th NN k ${s.detectors.knnK})` +
      Object.entries(s.detectors.leftOut)
        .map(([d, why]) => `; ${d} left out: ${why}`)
        .join(''),
    ...(s.outlier
      ? [
          `outlier split (${s.outlier.rows} rows) against test: ` +
            DETECTORS.filter((d) => s.outlier!.auroc[d] !== undefined)
              .map(
                (d) =>
                  `${DETECTOR_LABELS[d]} AUROC ${s.outlier!.auroc[d]!.toFixed(3)}, FPR95 ${(100 * s.outlier!.fpr95[d]!).toFixed(1)}%`,
              )
              .join('; '),
        ]
      : ['no outlier.<layer>.npy: no AUROC']),
  ].join('\n');
}
