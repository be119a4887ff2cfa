/**
 * Everything that defines a training run, its defaults (in one place) and the checks that span several
 * of its fields. A run's config.json holds this, so a run can be resumed and evaluated from its folder.
 * Errors name the field (`batchSize`); the command line maps them to its flags.
 */
import { InputError } from '../errors.js';
import type { PixelScale } from '../data/datasets.js';
import type { DistanceName } from '../loss/distance.js';
import type { PresetName } from '../loss/presets.js';
import type { ModelName, ModelOptions } from '../models/models.js';

export type TemperatureRule = number | 'annealed' | 'optimal';

export interface TrainConfig {
  dataset: string;
  /** Folder of user-supplied data sets (svhn, cifar10, ...). */
  dataDir?: string;
  /**
   * How the pixels are fed: 'normalized' (the data set's mean and std) or 'unit' ([0, 1], as the paper's
   * reference code). Absent in runs from before the option: 'normalized'.
   */
  pixels?: PixelScale;
  model: ModelName;
  modelOptions: ModelOptions;
  /** a in total = primary loss + a * sum over hidden layers of SNNL; a < 0 entangles. 0: no SNNL term. */
  factor: number;
  /** A number, 'annealed' (1 / (1 + epoch)^0.55; pt-snnl's T = 0), or 'optimal' (one step per batch). */
  temperature: TemperatureRule;
  distance: DistanceName;
  preset: PresetName;
  /**
   * Start from `temperature` and take the reference code's one step per batch on it (its
   * optimize_temperature); 'optimal' is the same rule from T = 1.
   */
  optimizeTemperature?: boolean;
  /** The temperature is in units of each batch's mean squared distance, per layer (scale-free). */
  relativeTemperature?: boolean;
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
  /**
   * Test accuracy and loss on this many test images (a seeded choice, the same every epoch; the
   * entanglement sample is its first evalSample images); default the whole test split.
   */
  testSubset?: number;
  /** The images padded (centred, zeros) and their channel repeated to this shape (src/data/reshape.ts). */
  inputShape?: [number, number, number];
  /**
   * Layers measured several times per epoch (SNNL at the optimal temperature on fixed test images),
   * into probes.jsonl: names, or 'final-block' (every layer of the ResNet's last residual block).
   */
  probe?: { layers: string[] | 'final-block'; perEpoch: number; size: number };
  /**
   * How entanglement is measured after each epoch, when not with the term's own form: a run that
   * entangles with the default bounded form is measured with the exact stable form, like its baseline.
   */
  measure?: { preset: PresetName; distance: DistanceName };
}

/** The SNNL form a run's entanglement is measured with. */
export function measureOptions(config: TrainConfig): { preset: PresetName; distance: DistanceName } {
  return config.measure ?? { preset: config.preset, distance: config.distance };
}

export const TRAIN_DEFAULTS = {
  pixels: 'normalized' as PixelScale,
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

/** Checks what spans several fields of a config (each field's own range is the caller's to check). */
export function checkTrainConfig(config: TrainConfig): TrainConfig {
  if (config.trainSubset !== undefined && config.trainSubset < config.batchSize) {
    throw new InputError(
      'trainSubset',
      `${config.trainSubset} examples make no batch of ${config.batchSize}; raise it or lower batchSize`,
    );
  }
  if (config.layerWeights === 'pt-snnl' && config.model !== 'cnn') {
    throw new InputError('layerWeights', 'pt-snnl weighting is defined for the cnn model only');
  }
  if (config.optimizeTemperature && typeof config.temperature !== 'number') {
    throw new InputError('optimizeTemperature', 'needs a starting temperature: a number, not annealed or optimal');
  }
  if (config.layers === 'code' && config.model !== 'autoencoder') {
    throw new InputError('layers', "'code' names the autoencoder's code; this model has none");
  }
  return config;
}
