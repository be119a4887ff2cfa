/**
 * Everything that defines a training run, its defaults (in one place) and its validation. A run's
 * config.json holds this, so `snnl train --resume DIR` and `snnl evaluate DIR` can rebuild it.
 */
import { InputError } from '../errors.js';
import { DISTANCES, type DistanceName } from '../loss/distance.js';
import { getPreset, PRESETS, type PresetName } from '../loss/presets.js';
import { MODEL_NAMES, type ModelName, type ModelOptions } from '../models/models.js';

export type TemperatureRule = number | 'annealed' | 'optimal';

export interface TrainConfig {
  dataset: string;
  /** Folder of user-supplied data sets (svhn, cifar10, ...). */
  dataDir?: string;
  model: ModelName;
  modelOptions: ModelOptions;
  /** a in total = primary loss + a * sum over hidden layers of SNNL; a < 0 entangles. 0: no SNNL term. */
  factor: number;
  /** A number, 'annealed' (1 / (1 + epoch)^0.55; pt-snnl's T = 0), or 'optimal' (one step per batch). */
  temperature: TemperatureRule;
  distance: DistanceName;
  preset: PresetName;
  /** Which hidden layers get an SNNL term: all of them, the autoencoder's code, or names. */
  layers: 'all' | 'code' | string[];
  /** How the per-layer terms combine: their (weighted) sum, or their minimum. */
  combine: 'sum' | 'min';
  /** 'equal', or 'pt-snnl': that code's repeated terms (conv1 x2, conv2 x3, fc1-fc3 x2) on the cnn. */
  layerWeights: 'equal' | 'pt-snnl';
  epochs: number;
  batchSize: number;
  lr: number;
  seed: number;
  /** Test images on which per-layer SNNL is measured after each epoch. */
  evalSample: number;
  /** Train on this many examples of the training split (a seeded choice); default all of them. */
  trainSubset?: number;
}

export const TRAIN_DEFAULTS = {
  factor: 0,
  temperature: 100 as TemperatureRule,
  preset: 'stable' as PresetName,
  layers: 'all' as const,
  combine: 'sum' as const,
  layerWeights: 'equal' as const,
  epochs: 10,
  batchSize: 128,
  lr: 1e-3,
  seed: 1234,
  evalSample: 1000,
};

/** pt-snnl's SNNL terms on its CNN: every module's output but the last, repeated by in-place ReLUs. */
export const PT_SNNL_CNN_WEIGHTS: Record<string, number> = { conv1: 2, conv2: 3, fc1: 2, fc2: 2, fc3: 2 };

export function parseNumberFlag(
  value: string | number | undefined,
  flag: string,
  check: (n: number) => boolean,
  expected: string,
): number | undefined {
  if (value === undefined) return undefined;
  const n = typeof value === 'number' ? value : value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new InputError(flag, `expected ${expected}, got '${value}'`);
  return n;
}

/** --temperature: a number above 0, 'annealed' or its pt-snnl sentinel 0, or 'optimal'. */
export function parseTemperatureRule(value: string | number | undefined): TemperatureRule | undefined {
  if (value === undefined) return undefined;
  if (value === 'annealed' || value === 'optimal') return value;
  const n = parseNumberFlag(
    value,
    '--temperature',
    (t) => t >= 0,
    "a number above 0, 0 or 'annealed' (annealing), or 'optimal'",
  );
  return n === 0 ? 'annealed' : n;
}

export interface TrainFlags {
  dataset?: string;
  dataDir?: string;
  model?: string;
  factor?: string;
  temperature?: string;
  distance?: string;
  preset?: string;
  layers?: string;
  combine?: string;
  layerWeights?: string;
  epochs?: string;
  batchSize?: string;
  lr?: string;
  seed?: string;
  evalSample?: string;
  widths?: string;
  trainSubset?: string;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  if (value === undefined) return undefined;
  if ((allowed as readonly string[]).includes(value)) return value as T;
  throw new InputError(flag, `unknown value '${value}'; expected one of ${allowed.join(', ')}`);
}

/** Builds and checks a config from command-line flags, before any work starts. */
export function configFromFlags(flags: TrainFlags): TrainConfig {
  if (flags.dataset === undefined)
    throw new InputError('--dataset', 'required (for example --dataset mnist; see snnl datasets)');
  const model = oneOf(flags.model, MODEL_NAMES, '--model');
  if (model === undefined) throw new InputError('--model', `required; one of ${MODEL_NAMES.join(', ')}`);
  const preset = oneOf(flags.preset, PRESETS, '--preset') ?? TRAIN_DEFAULTS.preset;
  const distance = oneOf(flags.distance, DISTANCES, '--distance') ?? getPreset(preset).distances[0]!;
  if (!getPreset(preset).distances.includes(distance)) {
    throw new InputError(
      '--distance',
      `the ${preset} preset supports ${getPreset(preset).distances.join(' and ')} distance only`,
    );
  }
  const whole = (n: number) => Number.isInteger(n) && n >= 1;
  let layers: TrainConfig['layers'] = TRAIN_DEFAULTS.layers;
  if (flags.layers !== undefined && flags.layers !== 'all') {
    layers =
      flags.layers === 'code'
        ? 'code'
        : flags.layers
            .split(',')
            .map((s) => s.trim())
            .filter(Boolean);
  }
  const widths = flags.widths
    ?.split(',')
    .map((w) => parseNumberFlag(w, '--widths', whole, 'whole numbers above 0, comma-separated')!);
  const config: TrainConfig = {
    dataset: flags.dataset,
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    model,
    modelOptions: widths ? { widths } : {},
    factor:
      parseNumberFlag(flags.factor, '--factor', () => true, 'a number (negative entangles)') ?? TRAIN_DEFAULTS.factor,
    temperature: parseTemperatureRule(flags.temperature) ?? TRAIN_DEFAULTS.temperature,
    distance,
    preset,
    layers,
    combine: oneOf(flags.combine, ['sum', 'min'] as const, '--combine') ?? TRAIN_DEFAULTS.combine,
    layerWeights:
      oneOf(flags.layerWeights, ['equal', 'pt-snnl'] as const, '--layer-weights') ?? TRAIN_DEFAULTS.layerWeights,
    epochs:
      parseNumberFlag(flags.epochs, '--epochs', whole, 'a whole number of epochs above 0') ?? TRAIN_DEFAULTS.epochs,
    batchSize:
      parseNumberFlag(
        flags.batchSize,
        '--batch-size',
        (n) => Number.isInteger(n) && n >= 2,
        'a whole number of at least 2',
      ) ?? TRAIN_DEFAULTS.batchSize,
    lr: parseNumberFlag(flags.lr, '--lr', (n) => n > 0, 'a learning rate above 0') ?? TRAIN_DEFAULTS.lr,
    seed:
      parseNumberFlag(flags.seed, '--seed', (n) => Number.isInteger(n) && n >= 0, 'a whole number from 0') ??
      TRAIN_DEFAULTS.seed,
    evalSample:
      parseNumberFlag(
        flags.evalSample,
        '--eval-sample',
        (n) => Number.isInteger(n) && n >= 2,
        'a whole number of at least 2',
      ) ?? TRAIN_DEFAULTS.evalSample,
  };
  const subset = parseNumberFlag(
    flags.trainSubset,
    '--train-subset',
    (n) => Number.isInteger(n) && n >= 2,
    'a whole number of at least 2',
  );
  if (subset !== undefined) config.trainSubset = subset;
  if (subset !== undefined && subset < config.batchSize) {
    throw new InputError(
      '--train-subset',
      `${subset} examples make no batch of ${config.batchSize}; raise it or lower --batch-size`,
    );
  }
  if (config.layerWeights === 'pt-snnl' && config.model !== 'cnn') {
    throw new InputError('--layer-weights', 'pt-snnl weighting is defined for the cnn model only');
  }
  if (config.layers === 'code' && config.model !== 'autoencoder') {
    throw new InputError('--layers', "'code' names the autoencoder's code; this model has none");
  }
  return config;
}
