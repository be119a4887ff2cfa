/**
 * `snnl dknn-features DIR`: Deep k-NN on features a user computed elsewhere (a PyTorch network, say),
 * read from .npy files named by split and layer:
 *
 *   train.<layer>.npy        [n_train, ...]  one per layer (any number of layers, any shape per row)
 *   train.labels.npy         [n_train]       class ids
 *   calibration.<layer>.npy  [n_cal, ...]    the same layers, held out from training
 *   calibration.labels.npy   [n_cal]
 *   test.<layer>.npy         [n_test, ...]   the inputs to judge
 *   test.labels.npy          [n_test]        optional: accuracy when given
 *
 * Writes prediction.npy, credibility.npy, confidence.npy and p-values.npy ([n_test, classes]) to --out,
 * with dknn.json (the settings and a summary), and prints the summary.
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

const SPLITS = ['train', 'calibration', 'test'] as const;

export interface FeatureFiles {
  layers: string[];
  /** By split: the file of each layer, and of the labels (test labels may be missing). */
  files: Record<(typeof SPLITS)[number], { layers: string[]; labels?: string }>;
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
    if (here.join(',') !== layers.join(','))
      throw new InputError(dir, `${split} has layers ${here.join(', ') || 'none'}, train has ${layers.join(', ')}`);
    const labels = names.includes(`${split}.labels.npy`) ? join(dir, `${split}.labels.npy`) : undefined;
    if (!labels && split !== 'test') throw new InputError(dir, `has no ${split}.labels.npy`);
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
}

export async function dknnFeaturesCommand(dir: string, options: FeatureDknnOptions, log: (l: string) => void) {
  const found = featureFiles(dir);
  const load = (split: (typeof SPLITS)[number]) => {
    const features = found.files[split].layers.map(readMatrix);
    const rows = features[0]!.rows;
    features.forEach((f, l) => {
      if (f.rows !== rows)
        throw new InputError(
          found.files[split].layers[l]!,
          `has ${f.rows} rows, ${found.files[split].layers[0]} has ${rows}`,
        );
    });
    const labelFile = found.files[split].labels;
    const labels = labelFile ? readLabels(labelFile, rows, found.files[split].layers[0]!) : undefined;
    return { features, labels, rows };
  };
  const train = load('train');
  const calibration = load('calibration');
  const test = load('test');
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
  if (calibration.rows === 0) throw new InputError(found.files.calibration.layers[0]!, 'has no rows');
  model.calibrate(calibration.features, calibration.labels!);
  const result = model.predict(test.features);
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
    backend: describeBackend(),
    seconds,
  };
  mkdirSync(options.out, { recursive: true });
  writeAtomic(join(options.out, 'prediction.npy'), encodeNpy(result.prediction, [test.rows], 'int32'));
  writeAtomic(join(options.out, 'credibility.npy'), encodeNpy(result.credibility, [test.rows], 'float64'));
  writeAtomic(join(options.out, 'confidence.npy'), encodeNpy(result.confidence, [test.rows], 'float64'));
  writeAtomic(join(options.out, 'p-values.npy'), encodeNpy(result.pValues, [test.rows, classes], 'float64'));
  writeJsonAtomic(join(options.out, 'dknn.json'), summary);
  log(`written: ${options.out}/prediction.npy, credibility.npy, confidence.npy, p-values.npy, dknn.json`);
  return summary;
}

export function formatFeatureDknn(s: Awaited<ReturnType<typeof dknnFeaturesCommand>>): string {
  return [
    `Deep k-NN of ${s.dir}: layers ${s.layers.join(', ')}; k ${s.k}; ${s.train} training rows, ${s.calibration} calibration, ${s.test} test; ${s.classes} classes`,
    `p-values ${s.pValues}; features ${s.normalize ? 'unit length, centred' : 'raw'}; ${s.backend}; ${s.seconds.toFixed(1)} s`,
    s.accuracy === null ? 'accuracy: no test.labels.npy' : `accuracy ${(100 * s.accuracy).toFixed(2)}%`,
    `mean credibility ${s.meanCredibility.toFixed(3)}; credibility histogram (10 bins over [0, 1]): ${s.credibilityHistogram.join(' ')}`,
  ].join('\n');
}
