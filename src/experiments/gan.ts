/**
 * Real against generated data (the poster's GAN panel): a small DCGAN trained on MNIST or Fashion-MNIST,
 * and every `measureEvery` steps the SNNL of a fixed probe (held-out real test images labelled 0, images
 * generated from a fixed code labelled 1) in several representations: the pixels, each hidden layer of the
 * discriminator, and each hidden layer of a classifier trained beforehand (a run folder of `snnl train`).
 * Each at the optimal temperature and at fixed ones, with the ceiling (the T -> infinity limit, log 2 for
 * two balanced sets) beside it. The poster measured 0.5617, 0.6196, 0.6208 and 0.6487 at steps 0, 400, 800
 * and 2000 and does not say in which representation or at which temperature.
 *
 * The study folder:
 *   config.json         the study's settings, backend, code version and commit
 *   metrics.jsonl       one line per measurement (GanRecord)
 *   checkpoint.bin      both networks and both optimizers after the last measurement (resume)
 *   snapshots/step-N.bin both networks at the snapshot steps (the report's pictures)
 * Everything is written atomically; a killed study resumes from its last measurement to the same numbers.
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { epochOrder } from '../data/batches.js';
import { defaultDataDir, getDatasetSpec, loadDataset } from '../data/datasets.js';
import { InputError } from '../errors.js';
import { writeJsonAtomic, writeAtomic } from '../io/atomic.js';
import { DISTANCES, type DistanceName } from '../loss/distance.js';
import { buildGan, type Gan, type GeneratorKind } from '../models/gan.js';
import { GanProbe, imagesOf, type Classifier, type GanQuality, type RepresentationRecord } from './gan-probe.js';

export { GanProbe, imagesOf, probeIndices, type GanQuality, type RepresentationRecord } from './gan-probe.js';
import { loadCheckpoint, saveCheckpoint, type NamedTensor } from '../training/checkpoint.js';
import { ganStep } from '../training/gan-step.js';
import { FusedAdamOptimizer } from '../training/optimizer.js';
import { ProgressBar } from '../training/progress.js';
import { loadTrainedNetwork, provenance, readStoredConfig } from '../training/run-store.js';

export interface GanConfig {
  dataset: string;
  dataDir?: string;
  steps: number;
  batchSize: number;
  lr: number;
  beta1: number;
  codeSize: number;
  /**
   * 'dcgan': batch normalization before the generator's ReLUs (Radford et al. 2016); 'plain': the earlier
   * generator without it. Absent in studies from before the option: 'plain'.
   */
  generator?: GeneratorKind;
  /** Measure the probe every this many steps (and at step 0 and the last step). */
  measureEvery: number;
  /** Real images in the probe; as many generated ones. */
  probeSize: number;
  /** Fixed temperatures measured beside the optimal one. */
  temperatures: number[];
  distance: DistanceName;
  /** A run folder of `snnl train` whose network's hidden layers are measured too. */
  classifier?: string;
  /** Steps at which both networks are kept for the report's pictures. */
  snapshots: number[];
  seed: number;
}

export const GAN_DEFAULTS = {
  dataset: 'mnist',
  steps: 2000,
  batchSize: 64,
  lr: 2e-4,
  beta1: 0.5,
  codeSize: 64,
  generator: 'dcgan' as GeneratorKind,
  measureEvery: 100,
  probeSize: 500,
  temperatures: [1, 10, 100],
  distance: 'squared-euclidean' as DistanceName,
  snapshots: [0, 400, 800, 2000],
  seed: 1234,
};

/** The poster's figures: SNNL of real against generated data at these training steps. */
export const POSTER_GAN = [
  { step: 0, snnl: 0.5617 },
  { step: 400, snnl: 0.6196 },
  { step: 800, snnl: 0.6208 },
  { step: 2000, snnl: 0.6487 },
];

export interface GanRecord {
  step: number;
  /** Mean losses of the steps since the previous record (null at step 0). */
  discriminatorLoss: number | null;
  generatorLoss: number | null;
  /** The discriminator's mean probability of "real" on the probe's real and generated images. */
  realScore: number;
  fakeScore: number;
  /** The T -> infinity limit of the probe's SNNL (log 2 for two sets of the same size, to 3 digits). */
  ceiling: number;
  /** Training seconds so far (not counting measurements). */
  seconds: number;
  representations: Record<string, RepresentationRecord>;
  /** The generator's quality in the classifier's eyes (with --classifier; absent in older studies). */
  quality?: GanQuality | null;
}

export interface StoredGanConfig {
  kind: 'gan-study';
  config: GanConfig;
  backend: string;
  versions: { snnl: string; tfjs: string; node: string };
  commit: string | null;
  dirty: boolean | null;
  createdAt: string;
}

export function ganFiles(dir: string) {
  return {
    config: join(dir, 'config.json'),
    metrics: join(dir, 'metrics.jsonl'),
    checkpoint: join(dir, 'checkpoint.bin'),
    snapshots: join(dir, 'snapshots'),
    snapshot: (step: number) => join(dir, 'snapshots', `step-${step}.bin`),
  };
}

const whole = (n: number, from: number) => Number.isInteger(n) && n >= from;

/** Checks a study's settings before any work: errors name the flag. */
export function checkGanConfig(config: GanConfig): GanConfig {
  const spec = getDatasetSpec(config.dataset);
  const [h, w, c] = spec.imageShape;
  if (h !== 28 || w !== 28 || c !== 1) {
    throw new InputError(
      '--dataset',
      `the GAN draws 28x28x1 images (mnist, fashion-mnist); ${spec.name} has ${spec.imageShape.join('x')}`,
    );
  }
  if (!whole(config.steps, 1)) throw new InputError('--steps', `expected a whole number above 0, got ${config.steps}`);
  if (!whole(config.batchSize, 2))
    throw new InputError('--batch-size', `expected a whole number of at least 2, got ${config.batchSize}`);
  if (!whole(config.measureEvery, 1))
    throw new InputError('--measure-every', `expected a whole number above 0, got ${config.measureEvery}`);
  if (!whole(config.probeSize, 2) || config.probeSize > spec.sizes.test) {
    throw new InputError(
      '--probe-size',
      `expected a whole number from 2 to ${spec.sizes.test} (the test split), got ${config.probeSize}`,
    );
  }
  if (!whole(config.codeSize, 1)) throw new InputError('--code-size', `expected a whole number above 0`);
  if (!(config.lr > 0)) throw new InputError('--lr', `expected a learning rate above 0, got ${config.lr}`);
  if (config.temperatures.some((t) => !(t > 0) || !Number.isFinite(t))) {
    throw new InputError('--temperatures', `expected numbers above 0, got ${config.temperatures.join(',')}`);
  }
  if (!(DISTANCES as readonly string[]).includes(config.distance)) {
    throw new InputError('--distance', `expected one of ${DISTANCES.join(', ')}, got '${config.distance}'`);
  }
  const bad = config.snapshots.find((s) => !whole(s, 0) || s > config.steps);
  if (bad !== undefined) throw new InputError('--snapshots', `expected steps from 0 to ${config.steps}, got ${bad}`);
  const location = spec.locate(config.dataDir ?? defaultDataDir());
  if (!location.available) {
    throw new InputError('--dataset', `${spec.name} is not available (looked in ${location.where}): ${location.howTo}`);
  }
  if (config.classifier !== undefined) {
    const stored = readStoredConfig(config.classifier);
    const theirs = getDatasetSpec(stored.config.dataset).imageShape;
    const shape = stored.config.inputShape ?? theirs;
    if (shape.join('x') !== spec.imageShape.join('x')) {
      throw new InputError(
        '--classifier',
        `${config.classifier} was trained on ${shape.join('x')} images; the GAN draws ${spec.imageShape.join('x')}`,
      );
    }
    if (!existsSync(join(config.classifier, 'checkpoint.bin'))) {
      throw new InputError('--classifier', `${config.classifier} has no checkpoint yet: no epoch has finished`);
    }
  }
  return config;
}

/** Makes the study folder and writes config.json (refusing a folder that holds something else). */
export function createGanStudy(dir: string, config: GanConfig, backend: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new InputError('--out', `${dir} is a file, not a folder`);
  if (existsSync(ganFiles(dir).config)) {
    throw new InputError('--out', `${dir} already holds a study; resume it with snnl gan --resume ${dir}`);
  }
  mkdirSync(dir, { recursive: true });
  const stored: StoredGanConfig = { kind: 'gan-study', config, ...provenance(backend) };
  writeJsonAtomic(ganFiles(dir).config, stored);
}

export function readGanConfig(dir: string): StoredGanConfig {
  const path = ganFiles(dir).config;
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'no such study folder');
  if (!existsSync(path)) throw new InputError(dir, 'not a GAN study folder (it has no config.json)');
  let stored: StoredGanConfig;
  try {
    stored = JSON.parse(readFileSync(path, 'utf8')) as StoredGanConfig;
  } catch (error) {
    throw new InputError(path, `unreadable: ${(error as Error).message}`);
  }
  if (stored.kind !== 'gan-study')
    throw new InputError(dir, 'not a GAN study folder (its config.json is a training run)');
  return stored;
}

export function readGanRecords(dir: string): GanRecord[] {
  const path = ganFiles(dir).metrics;
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as GanRecord);
}

/** The seeds of the codes a step draws (the discriminator's and the generator's), and of the probe's code. */
const noiseSeed = (seed: number, step: number, which: 0 | 1) => (seed * 2654435761 + step * 2 + which) % 2147483647;
interface GanCheckpointMeta {
  step: number;
  records: GanRecord[];
  /** How many of the checkpoint's tensors are the generator's, the discriminator's, and each optimizer's. */
  counts: [number, number, number, number];
  sums: { discriminator: number; generator: number; steps: number };
}

async function saveGanState(
  path: string,
  gan: Gan,
  optimizers: [tf.Optimizer, tf.Optimizer] | undefined,
  meta: Omit<GanCheckpointMeta, 'counts'>,
): Promise<void> {
  const g = gan.generator.weights.map((w, k) => ({ name: `g${k}`, tensor: w.read() }));
  const d = gan.discriminator.weights.map((w, k) => ({ name: `d${k}`, tensor: w.read() }));
  const [og, od] = optimizers ? await Promise.all(optimizers.map((o) => o.getWeights())) : [[], []];
  const tensors: NamedTensor[] = [...g, ...d, ...og!, ...od!];
  saveCheckpoint<GanCheckpointMeta>(path, tensors, { ...meta, counts: [g.length, d.length, og!.length, od!.length] });
  tf.dispose([...og!, ...od!].map((t) => t.tensor).filter((t) => !(t instanceof tf.Variable)));
}

/** Sets both networks (and, given, both optimizers) from a checkpoint or snapshot; returns its metadata. */
async function restoreGan(
  path: string,
  gan: Gan,
  optimizers?: [tf.Optimizer, tf.Optimizer],
): Promise<GanCheckpointMeta> {
  const { tensors, metadata } = loadCheckpoint<GanCheckpointMeta>(path);
  const [ng, nd, nog, nod] = metadata.counts;
  try {
    if (ng !== gan.generator.weights.length || nd !== gan.discriminator.weights.length) {
      throw new InputError(path, `does not hold this study's networks (${ng} and ${nd} weights)`);
    }
    gan.generator.setWeights(tensors.slice(0, ng).map((t) => t.tensor));
    gan.discriminator.setWeights(tensors.slice(ng, ng + nd).map((t) => t.tensor));
    if (optimizers && nog > 0) await optimizers[0].setWeights(tensors.slice(ng + nd, ng + nd + nog));
    if (optimizers && nod > 0) await optimizers[1].setWeights(tensors.slice(ng + nd + nog, ng + nd + nog + nod));
  } finally {
    tf.dispose(tensors.map((t) => t.tensor));
  }
  return metadata;
}

export interface GanStudyOptions {
  quiet?: boolean;
  log?: (line: string) => void;
  /** Stop before this step, as a killed process would (tests of resuming). */
  stopAt?: number;
}

/** The classifier of a study, with the pixel normalization it was trained with. */
function loadClassifier(dir: string): Classifier {
  const { net, dataset } = loadTrainedNetwork(dir);
  const norm = net.kind === 'autoencoder' ? { mean: 0, std: 1 } : dataset.normalization;
  return { net, mean: norm.mean, std: norm.std };
}

/**
 * Trains (or resumes) the study in `dir` from its config.json to its last step, measuring the probe as it
 * goes; returns every record.
 */
export async function runGanStudy(dir: string, options: GanStudyOptions = {}): Promise<GanRecord[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const { config } = readGanConfig(dir);
  const files = ganFiles(dir);
  const dataset = loadDataset(config.dataset, config.dataDir);
  const gan = buildGan(
    { codeSize: config.codeSize, imageShape: dataset.imageShape, generator: config.generator ?? 'plain' },
    config.seed,
  );
  const optimizers: [tf.Optimizer, tf.Optimizer] = [
    new FusedAdamOptimizer(config.lr, config.beta1),
    new FusedAdamOptimizer(config.lr, config.beta1),
  ];
  const [gOptimizer, dOptimizer] = optimizers;
  const classifier = config.classifier !== undefined ? loadClassifier(config.classifier) : undefined;
  const probe = new GanProbe(dataset, config, gan, classifier);
  try {
    let step = 0;
    let records: GanRecord[] = [];
    let sums = { discriminator: 0, generator: 0, steps: 0 };
    if (existsSync(files.checkpoint)) {
      const meta = await restoreGan(files.checkpoint, gan, optimizers);
      ({ step, records, sums } = meta);
      log(`resuming ${dir} at step ${step} of ${config.steps}`);
    }
    let seconds = records.at(-1)?.seconds ?? 0;
    const keep = async () => {
      await saveGanState(files.checkpoint, gan, optimizers, { step, records, sums });
      writeAtomic(files.metrics, records.map((r) => JSON.stringify(r)).join('\n') + '\n');
    };
    const snapshot = async () => {
      if (!config.snapshots.includes(step)) return;
      mkdirSync(files.snapshots, { recursive: true });
      await saveGanState(files.snapshot(step), gan, undefined, { step, records: [], sums });
    };
    const record = () => {
      const measured = probe.measure();
      records.push({
        step,
        discriminatorLoss: sums.steps > 0 ? sums.discriminator / sums.steps : null,
        generatorLoss: sums.steps > 0 ? sums.generator / sums.steps : null,
        seconds,
        ...measured,
      });
      sums = { discriminator: 0, generator: 0, steps: 0 };
      if (!options.quiet) {
        const values = Object.entries(measured.representations)
          .map(([name, r]) => `${name} ${r.optimalLoss.toFixed(3)}`)
          .join(', ');
        const quality = measured.quality
          ? `; Fréchet distance ${measured.quality.frechet.toFixed(2)}, classifier confidence ${measured.quality.confidence.toFixed(3)}`
          : '';
        log(`step ${step}: SNNL at the optimal T (ceiling ${measured.ceiling.toFixed(3)}): ${values}${quality}`);
      }
    };
    if (step === 0 && records.length === 0) {
      record();
      await snapshot();
      await keep();
    }
    const perEpoch = Math.floor(dataset.train.count / config.batchSize);
    let orderEpoch = -1;
    let order: Int32Array[] = [];
    const bar = new ProgressBar('gan', config.steps, process.stderr, options.quiet);
    while (step < config.steps) {
      if (options.stopAt === step) return records;
      const started = performance.now();
      const epoch = Math.floor(step / perEpoch);
      if (epoch !== orderEpoch) {
        order = epochOrder(dataset.train.count, { batchSize: config.batchSize, seed: config.seed, epoch });
        orderEpoch = epoch;
      }
      const real = imagesOf(dataset.train, dataset.imageShape, order[step % perEpoch]!);
      let dl: number;
      let gl: number;
      try {
        ({ discriminatorLoss: dl, generatorLoss: gl } = ganStep(
          gan,
          { generator: gOptimizer, discriminator: dOptimizer },
          real,
          config.codeSize,
          [noiseSeed(config.seed, step, 0), noiseSeed(config.seed, step, 1)],
        ));
      } finally {
        real.dispose();
      }
      if (!Number.isFinite(dl) || !Number.isFinite(gl)) {
        throw new Error(`the GAN's losses became ${dl} and ${gl} at step ${step + 1}; lower --lr`);
      }
      sums.discriminator += dl;
      sums.generator += gl;
      sums.steps += 1;
      step += 1;
      seconds += (performance.now() - started) / 1000;
      bar.update(step, { D: dl.toFixed(3), G: gl.toFixed(3), speed: `${(step / seconds).toFixed(1)} steps/s` });
      const measuring = step % config.measureEvery === 0 || step === config.steps;
      if (measuring) record();
      await snapshot();
      if (measuring) await keep();
    }
    return records;
  } finally {
    probe.dispose();
    gan.generator.dispose();
    gan.discriminator.dispose();
    optimizers.forEach((o) => o.dispose());
    classifier?.net.model.dispose();
  }
}

/** Both networks as they were at a snapshot step (for the report's pictures); the caller disposes them. */
export async function loadSnapshot(dir: string, step: number): Promise<Gan> {
  const { config } = readGanConfig(dir);
  const spec = getDatasetSpec(config.dataset);
  const gan = buildGan(
    { codeSize: config.codeSize, imageShape: spec.imageShape, generator: config.generator ?? 'plain' },
    config.seed,
  );
  await restoreGan(ganFiles(dir).snapshot(step), gan);
  return gan;
}

/** The probe's images and representations of a snapshot (the report's t-SNE and sample grids). */
export async function snapshotRepresentations(
  dir: string,
  step: number,
  names: string[],
): Promise<{ rows: Map<string, number[][]>; labels: Int32Array; generated: Float32Array }> {
  const { config } = readGanConfig(dir);
  const dataset = loadDataset(config.dataset, config.dataDir);
  const gan = await loadSnapshot(dir, step);
  const classifier =
    config.classifier !== undefined && names.some((n) => n.startsWith('classifier/'))
      ? loadClassifier(config.classifier)
      : undefined;
  const probe = new GanProbe(dataset, config, gan, classifier);
  try {
    const images = probe.images();
    const { named, scores } = probe.representations(images);
    const n = config.probeSize;
    const generated = tf.tidy(() => tf.slice(images, n, n).dataSync() as Float32Array);
    images.dispose();
    scores.dispose();
    const rows = new Map<string, number[][]>();
    for (const name of names) {
      const h = named.get(name);
      if (h === undefined)
        throw new InputError('--tsne', `no representation '${name}'; the study has ${[...named.keys()].join(', ')}`);
      rows.set(name, h.arraySync());
    }
    tf.dispose([...named.values()]);
    return { rows, labels: probe.labels, generated };
  } finally {
    probe.dispose();
    gan.generator.dispose();
    gan.discriminator.dispose();
    classifier?.net.model.dispose();
  }
}
