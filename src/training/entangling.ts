/**
 * Which SNNL form a training term uses. Measuring keeps the exact stable form; a term that entangles
 * (factor < 0, so training maximizes it) must be bounded above, or the network learns to blow its
 * activations up: the stable form on a Euclidean distance grows without limit as same-class neighbours
 * move away (measured on the MLP, 1 epoch: total loss -3.7e10, 10% test accuracy). Cosine distances lie
 * in [0, 2], which bounds every form (each row at most 2 / T + log b); the reference code's epsilon form is
 * bounded on any distance (each row at most -log(1e-5) = 11.5). So with factor < 0 and no preset chosen,
 * a squared-Euclidean term is the epsilon form ('cleverhans'); a user who picks an unbounded combination
 * is warned in one line.
 */
import type { DistanceName } from '../loss/distance.js';
import { getPreset, type PresetName } from '../loss/presets.js';

/** The preset an entangling term on squared Euclidean distance uses when none is chosen. */
export const ENTANGLING_PRESET: PresetName = 'cleverhans';

/** Why maximizing this combination is unbounded, or undefined when it is bounded (or not maximized). */
export function unboundedWhenEntangling(
  preset: PresetName,
  distance: DistanceName,
  factor: number,
): string | undefined {
  if (factor >= 0 || distance === 'cosine' || getPreset(preset).formula.bounded) return undefined;
  return (
    `factor ${factor} maximizes the ${preset} form on ${distance} distance, which has no upper bound: the ` +
    `network can raise it by scaling its activations up (leave the preset out for the bounded ` +
    `${ENTANGLING_PRESET} form, or use --distance cosine)`
  );
}

/** The temperature rule of a training term: a number, 'annealed' or 'optimal'. */
export type TermTemperature = number | 'annealed' | 'optimal';

/** The temperature a training term uses when none is chosen (the published table's). */
export const DEFAULT_TEMPERATURE = 100;

export interface TrainingTerm {
  preset: PresetName;
  distance: DistanceName;
  temperature: TermTemperature;
  /** Whether the temperature is in units of each batch's mean squared distance, per layer. */
  relativeTemperature: boolean;
  /** How entanglement is measured: the chosen preset, else the exact stable form (like a baseline). */
  measure: { preset: PresetName; distance: DistanceName };
}

/**
 * The form and temperature of a training term with `factor`: what was chosen, or, when entangling with no
 * preset chosen on squared Euclidean distance (the default), the bounded epsilon form at a temperature
 * relative to each batch (T = 1 x the mean squared distance between its rows in that layer). An absolute
 * temperature means different things for different layers and networks: on the MLP at T = 1 every
 * neighbour is far (the term sits at its bound and does nothing), while a narrower network at the same T
 * was entangled to chance accuracy; relative to the batch, the term acts alike everywhere.
 */
export function trainingTerm(
  factor: number,
  chosen: {
    distance?: DistanceName | undefined;
    preset?: PresetName | undefined;
    temperature?: TermTemperature | undefined;
    relativeTemperature?: boolean | undefined;
  },
): TrainingTerm {
  const distance = chosen.distance ?? getPreset(chosen.preset ?? 'stable').distances[0]!;
  const bounded = chosen.preset === undefined && factor < 0 && distance === 'squared-euclidean';
  const relative = chosen.relativeTemperature ?? (bounded && chosen.temperature === undefined);
  return {
    preset: chosen.preset ?? (bounded ? ENTANGLING_PRESET : 'stable'),
    distance,
    temperature: chosen.temperature ?? (relative ? 1 : DEFAULT_TEMPERATURE),
    relativeTemperature: relative,
    measure: { preset: chosen.preset ?? 'stable', distance },
  };
}
