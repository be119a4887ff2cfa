/**
 * Named bundles of choices that reproduce an implementation users know (../shared/REFERENCE.md §1).
 *
 * | preset     | formula                  | distances                   | rows with no partner  |
 * |------------|--------------------------|-----------------------------|-----------------------|
 * | stable     | log-sum-exp, exact mask  | any (default squared-eucl.) | left out of the mean  |
 * | cleverhans | epsilon 1e-5, f - I mask | squared-euclidean, cosine   | contribute -log(1e-5) |
 * | pt-snnl    | epsilon 1e-5, f - I mask | cosine                      | contribute -log(1e-5) |
 */
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
