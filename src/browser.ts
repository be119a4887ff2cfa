/**
 * snnl for the browser (and any bundler): the loss, its temperatures, training any tf.LayersModel with
 * SNNL and measuring its layers, with no Node built-ins. Bundlers pick this entry through the package's
 * "browser" export condition; Node gets src/index.ts, which adds the native and wasm engines.
 *
 *     import { snnl, trainWithSnnl, measureLayers } from 'snnl';
 */
export * from './loss/index.js';
export { InputError } from './errors.js';
export {
  trainWithSnnl,
  measureLayers,
  type TrainWithSnnlOptions,
  type MeasureLayersOptions,
  type TrainingData,
  type LabelledBatch,
  type LabelInput,
} from './training/with-snnl.js';
export type { EpochMetrics } from './training/loop.js';
export type { LayerEntanglement } from './training/evaluate.js';
