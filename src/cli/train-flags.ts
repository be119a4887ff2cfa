/**
 * `snnl train`'s flags: their parsing into a TrainConfig, with errors that name the flag, before any work
 * starts.
 */
import { PIXEL_SCALES } from '../data/datasets.js';
import { parseImageShape } from '../data/reshape.js';
import { InputError, checkOneOf } from '../errors.js';
import { DISTANCES } from '../loss/distance.js';
import { presetDistance, PRESETS } from '../loss/presets.js';
import { MODEL_NAMES } from '../models/models.js';
import { checkTrainConfig, TRAIN_DEFAULTS, type TemperatureRule, type TrainConfig } from '../training/config.js';
import { trainingTerm } from '../training/entangling.js';

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
  pixels?: string;
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
  testSubset?: string;
  optimizeTemperature?: boolean;
  relativeTemperature?: boolean;
  inputShape?: string;
  probeLayers?: string;
  probesPerEpoch?: string;
  probeSize?: string;
}

function oneOf<T extends string>(value: string | undefined, allowed: readonly T[], flag: string): T | undefined {
  return value === undefined ? undefined : checkOneOf(value, allowed, flag);
}

/** Builds and checks a config from command-line flags, before any work starts. */
export function configFromFlags(flags: TrainFlags): TrainConfig {
  if (flags.dataset === undefined)
    throw new InputError('--dataset', 'required (for example --dataset mnist; see snnl datasets)');
  const model = oneOf(flags.model, MODEL_NAMES, '--model');
  if (model === undefined) throw new InputError('--model', `required; one of ${MODEL_NAMES.join(', ')}`);
  const factor =
    parseNumberFlag(flags.factor, '--factor', () => true, 'a number (negative entangles)') ?? TRAIN_DEFAULTS.factor;
  const chosenPreset = oneOf(flags.preset, PRESETS, '--preset');
  const chosenDistance = oneOf(flags.distance, DISTANCES, '--distance');
  // Entangling with no preset chosen trains the bounded form, annealed (src/training/entangling.ts).
  const term = trainingTerm(factor, {
    preset: chosenPreset,
    distance: chosenDistance,
    temperature: parseTemperatureRule(flags.temperature),
    relativeTemperature: flags.relativeTemperature ? true : undefined,
  });
  const preset = term.preset;
  const distance = presetDistance(preset, chosenDistance, '--distance');
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
    pixels: oneOf(flags.pixels, PIXEL_SCALES, '--pixels') ?? TRAIN_DEFAULTS.pixels,
    model,
    modelOptions: widths ? { widths } : {},
    factor,
    temperature: term.temperature,
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
  const testSubset = parseNumberFlag(
    flags.testSubset,
    '--test-subset',
    (n) => Number.isInteger(n) && n >= 1,
    'a whole number of at least 1',
  );
  if (testSubset !== undefined) config.testSubset = testSubset;
  if (flags.inputShape !== undefined) config.inputShape = parseImageShape(flags.inputShape, '--input-shape');
  const perEpoch = parseNumberFlag(flags.probesPerEpoch, '--probes-per-epoch', whole, 'a whole number above 0');
  const probeSize = parseNumberFlag(
    flags.probeSize,
    '--probe-size',
    (n) => Number.isInteger(n) && n >= 2,
    'a whole number of at least 2',
  );
  if (flags.probeLayers !== undefined) {
    const names = flags.probeLayers
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    if (names.length === 0)
      throw new InputError('--probe-layers', "expected 'final-block' or layer names, comma-separated");
    config.probe = {
      layers: names.length === 1 && names[0] === 'final-block' ? 'final-block' : names,
      perEpoch: perEpoch ?? 10,
      size: probeSize ?? 1000,
    };
  } else if (perEpoch !== undefined || probeSize !== undefined) {
    throw new InputError(
      perEpoch !== undefined ? '--probes-per-epoch' : '--probe-size',
      'needs --probe-layers (the layers to probe)',
    );
  }
  if (flags.optimizeTemperature) config.optimizeTemperature = true;
  if (term.relativeTemperature) config.relativeTemperature = true;
  // Recorded only where it differs from the term's own form (a defaulted entangling preset).
  if (term.measure.preset !== preset) config.measure = term.measure;
  return checkTrainConfig(config);
}
