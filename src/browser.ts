/**
 * snnl for the browser (and any bundler): the loss, its temperatures, training any tf.LayersModel with
 * SNNL and measuring its layers, and Deep k-NN on features, with no Node built-ins. Bundlers pick this
 * entry through the package's "browser" export condition; Node gets src/index.ts, which adds the native
 * and wasm engines.
 *
 *     import { snnl, trainWithSnnl, measureLayers, DeepKnn } from 'snnl';
 */
export * from './loss/index.js';
export { InputError } from './errors.js';
export {
  trainWithSnnl,
  type TrainWithSnnlOptions,
  type SnnlHistory,
  type TrainingData,
  type LabelledBatch,
  type LabelInput,
} from './training/with-snnl.js';
export type { EpochMetrics } from './training/loop.js';
export { balancedBatches, balancedIndices, MemoryBank, type BalancedOptions } from './training/samplers.js';
export type { TfjsCallbacks } from './training/callbacks.js';
export type { LayerEntanglement } from './training/evaluate.js';
export { measureLayers, type MeasureLayersOptions, type LayerMeasurement } from './analysis/measure-layers.js';
export { retrievalMetrics, type RetrievalMetrics } from './analysis/retrieval.js';
export {
  DeepKnn,
  DKNN_DEFAULTS,
  P_VALUE_FORMS,
  type DknnOptions,
  type DknnResult,
  type PValueForm,
  type LayerTrainFeatures,
} from './analysis/dknn.js';
export {
  nearestNeighbors,
  type FeatureMatrix,
  type FeatureChunks,
  type KnnOptions,
  type Neighbors,
} from './analysis/knn.js';
export { auroc, bootstrapAurocs, fprAtTpr, reliability, histogram } from './analysis/metrics.js';
export {
  calibrate as conformalCalibration,
  conformalPValue,
  conformalPValues,
  predictionSets,
  setSummaries,
  CONFORMAL_FORMS,
  type ConformalCalibration,
  type ConformalForm,
  type SetSummary,
} from './analysis/conformal.js';
export {
  energyScore,
  fitMahalanobis,
  mahalanobisScore,
  knnDistanceScore,
  type MahalanobisModel,
} from './analysis/detectors.js';
