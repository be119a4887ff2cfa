/**
 * The loss's options, their defaults (in one place) and their validation.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkOneOf, InputError } from '../errors.js';
import { DISTANCES, getDistance, type Distance, type DistanceName } from './distance.js';
import type { Formula } from './formula.js';
import { getPreset, presetDistance, PRESETS, type PresetName } from './presets.js';

export const REDUCTIONS = ['mean', 'sum', 'none'] as const;
export type Reduction = (typeof REDUCTIONS)[number];

export interface SnnlOptions {
  /** Temperature T > 0 of the neighbour distribution exp(-D / T). Default 1. */
  temperature?: number;
  /** Pairwise distance. Default: the preset's own (squared-euclidean; cosine for pt-snnl). */
  distance?: DistanceName;
  /** Which implementation's formula: 'stable' (default), 'cleverhans' or 'pt-snnl'. */
  preset?: PresetName;
  /** 'mean' over the counted rows (default), 'sum', or 'none' for one value per example. */
  reduction?: Reduction;
  /**
   * Rows per block: memory grows with b x blockSize instead of b x b. Default: the whole batch up to
   * b = 8192 (4096 on wasm), above that as many rows as keep a block's b x blockSize matrices at 64M
   * entries (256 MB of float32 each; 16M on wasm), so a large data set never needs b x b memory.
   */
  blockSize?: number;
  /** Reject NaN and Infinity in the features, naming the row (reads one flag per row). Default true. */
  checkFinite?: boolean;
}

export const DEFAULTS = {
  temperature: 1,
  preset: 'stable' as PresetName,
  reduction: 'mean' as Reduction,
  checkFinite: true,
};

export interface ResolvedOptions {
  temperature: number;
  distance: Distance;
  formula: Formula;
  preset: PresetName;
  reduction: Reduction;
  blockSize: number;
  checkFinite: boolean;
}

/** Checks a temperature: a finite number above 0. */
export function checkTemperature(value: unknown, subject = 'temperature'): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new InputError(subject, `expected a finite number above 0, got ${String(value)}`);
  }
  return value;
}

/**
 * Entries of one b x blockSize matrix under the default block size: 64M (256 MB of float32), 16M on the
 * wasm backend, whose heap (at most 4 GB) holds every live tensor of a block.
 */
export function defaultBlockEntries(): number {
  return tf.getBackend() === 'wasm' ? 1 << 24 : 1 << 26;
}

/** The default rows per block for a batch of b: all of them while b x b fits `entries`, else entries / b. */
export function defaultBlockSize(b: number, entries = defaultBlockEntries()): number {
  return Math.max(1, Math.min(b, Math.floor(entries / Math.max(1, b))));
}

export function resolveOptions(options: SnnlOptions, batchSize: number): ResolvedOptions {
  const presetName = checkOneOf(options.preset ?? DEFAULTS.preset, PRESETS, 'preset');
  const preset = getPreset(presetName);
  const distanceName = presetDistance(
    presetName,
    options.distance === undefined ? undefined : checkOneOf(options.distance, DISTANCES, 'distance'),
  );
  const blockSize = options.blockSize ?? defaultBlockSize(batchSize);
  if (!Number.isInteger(blockSize) || blockSize < 1) {
    throw new InputError('blockSize', `expected a whole number of rows above 0, got ${String(blockSize)}`);
  }
  return {
    temperature: checkTemperature(options.temperature ?? DEFAULTS.temperature),
    distance: getDistance(distanceName),
    formula: preset.formula,
    preset: presetName,
    reduction: checkOneOf(options.reduction ?? DEFAULTS.reduction, REDUCTIONS, 'reduction'),
    blockSize: Math.min(blockSize, batchSize),
    checkFinite: options.checkFinite ?? DEFAULTS.checkFinite,
  };
}

/** The largest finite float32. */
const FLOAT32_MAX = 3.4028234663852886e38;

export type Labels = tf.Tensor | ArrayLike<number>;

/** Labels as whole numbers, one per example. */
export function toLabelArray(labels: Labels, batchSize: number): Int32Array {
  let values: ArrayLike<number>;
  if (labels instanceof tf.Tensor) {
    if (labels.rank !== 1) {
      throw new InputError('labels', `expected a 1-D tensor of class ids, got shape [${labels.shape.join(', ')}]`);
    }
    values = labels.dataSync() as ArrayLike<number>;
  } else if (labels !== null && typeof labels === 'object' && typeof labels.length === 'number') {
    values = labels;
  } else {
    throw new InputError('labels', 'expected an int32 tensor or an array of class ids');
  }
  if (values.length !== batchSize) {
    throw new InputError('labels', `expected ${batchSize} labels (one per row of features), got ${values.length}`);
  }
  const out = new Int32Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== 'number' || !Number.isInteger(v) || Math.abs(v) > 2147483647) {
      throw new InputError('labels', `label ${i} is ${String(v)}; labels must be whole numbers (class ids)`);
    }
    out[i] = v;
  }
  return out;
}

/** Features as a float32 [b, d] tensor (any rank, flattened per example), checked. */
export function toFeatureMatrix(features: tf.Tensor | tf.TensorLike, checkFinite: boolean): tf.Tensor2D {
  const x = features instanceof tf.Tensor ? features : tf.tensor(features);
  if (x.rank < 2) {
    throw new InputError('features', `expected shape [batch, ...features], got [${x.shape.join(', ')}]`);
  }
  const b = x.shape[0]!;
  if (b < 2) throw new InputError('features', `expected a batch of at least 2 examples, got ${b}`);
  const flat = tf.reshape(x.dtype === 'float32' ? x : tf.cast(x, 'float32'), [b, -1]) as tf.Tensor2D;
  if (flat.shape[1] === 0) throw new InputError('features', 'each example has 0 features');
  if (checkFinite) {
    // 0 * x is 0 for finite x and NaN for NaN and +-inf, so a row sums to 0 exactly when it is finite
    // (two plain float ops, fast on every backend, where isFinite + all are slow kernels on some).
    const checks = tf.tidy(() => tf.concat([tf.sum(tf.mul(flat, 0), 1), tf.reshape(tf.max(tf.abs(flat)), [1])]));
    const values = checks.dataSync();
    checks.dispose();
    const bad = values.subarray(0, b).findIndex((v) => v !== 0);
    if (bad >= 0) {
      throw new InputError('features', `row ${bad} holds a NaN or infinite value; features must be finite`);
    }
    checkFeatureRange(values[b]!, flat.shape[1]!, 'features');
  }
  return flat;
}

/**
 * The largest |x| SNNL takes at `features` features per row. Centred rows reach 2 max|x|, and
 * |c_i|^2 + |c_j|^2 - 2 c_i.c_j sums terms up to (2 max|x|)^2 d each: past float32's range they would
 * turn into NaN.
 */
export function featureLimit(features: number): number {
  return Math.sqrt(FLOAT32_MAX / (16 * features));
}

/**
 * The one range check of every path that takes features (snnl(), `snnl measure`, training): throws the
 * same one-line InputError, naming `subject`, where max|x| passes featureLimit.
 */
export function checkFeatureRange(largest: number, features: number, subject: string): void {
  const limit = featureLimit(features);
  if (!(largest <= limit)) {
    throw new InputError(
      subject,
      `values reach ${largest.toExponential(2)}: squared distances between rows would overflow float32 at ` +
        `${features} features (keep |x| below ${limit.toExponential(2)}); scale the features down: ` +
        `SNNL of x / s at temperature T / s^2 (squared Euclidean) equals SNNL of x at T`,
    );
  }
}
