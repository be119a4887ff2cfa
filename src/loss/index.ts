export { snnl, snnlDetails, type SnnlDetails } from './snnl.js';
export { snnlNaive } from './naive.js';
export { snnlAtTemperatures, type SnnlAtTemperatures } from './sweep.js';
export {
  annealedTemperature,
  optimalTemperature,
  snnlCeiling,
  type OptimalTemperature,
  type OptimalTemperatureOptions,
} from './temperature.js';
export { DEFAULTS, REDUCTIONS, type Reduction, type SnnlOptions, type Labels } from './options.js';
export { DISTANCES, type DistanceName } from './distance.js';
export { PRESETS, REFERENCE_EPSILON, type PresetName } from './presets.js';
export { snnlWithReference, type ReferenceOptions } from './reference.js';
