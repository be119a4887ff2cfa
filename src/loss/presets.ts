/**
 * Named bundles of choices that reproduce an implementation users know (docs/reference.md, section 2).
 *
 * | preset     | formula                  | distances                   | rows with no partner  |
 * |------------|--------------------------|-----------------------------|-----------------------|
 * | stable     | log-sum-exp, exact mask  | any (default squared-eucl.) | left out of the mean  |
 * | cleverhans | epsilon 1e-5, f - I mask | squared-euclidean, cosine   | contribute -log(1e-5) |
 * | pt-snnl    | epsilon 1e-5, f - I mask | cosine                      | contribute -log(1e-5) |
 */
import { InputError } from '../errors.js';
import { DISTANCES, type DistanceName } from './distance.js';
import { epsilonFormula, logSumExp, type Formula } from './formula.js';

export const PRESETS = ['stable', 'cleverhans', 'pt-snnl'] as const;
export type PresetName = (typeof PRESETS)[number];

export interface Preset {
  readonly name: PresetName;
  readonly formula: Formula;
  /** Distances the implementation offers; the first is its default. */
  readonly distances: readonly DistanceName[];
}

/** Both reference implementations add this to the denominator and inside the log. */
export const REFERENCE_EPSILON = 1e-5;

const reference = epsilonFormula(REFERENCE_EPSILON);

const byName: Record<PresetName, Preset> = {
  stable: { name: 'stable', formula: logSumExp, distances: DISTANCES },
  cleverhans: { name: 'cleverhans', formula: reference, distances: ['squared-euclidean', 'cosine'] },
  'pt-snnl': { name: 'pt-snnl', formula: reference, distances: ['cosine'] },
};

export function getPreset(name: PresetName): Preset {
  return byName[name];
}

/** The distance to use with a preset: `distance` when the preset offers it, its own default when undefined. */
export function presetDistance(
  preset: PresetName,
  distance: DistanceName | undefined,
  subject = 'distance',
): DistanceName {
  const offered = getPreset(preset).distances;
  if (distance === undefined) return offered[0]!;
  if (!offered.includes(distance)) {
    throw new InputError(
      subject,
      `the ${preset} preset supports ${offered.join(' and ')} distance only, not ${distance}`,
    );
  }
  return distance;
}
