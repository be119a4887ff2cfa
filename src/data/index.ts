export {
  DATASETS,
  DATASET_NAMES,
  defaultDataDir,
  getDatasetSpec,
  loadDataset,
  verifyDataset,
  type Dataset,
  type DatasetSpec,
  type ImageSplit,
  type Normalization,
} from './datasets.js';
export { epochBatches, epochOrder, gatherBatch, permutation, seededRandom, type Batch } from './batches.js';
export { parseIdx, encodeIdx } from './idx.js';
export { parseMat, encodeMat } from './mat.js';
export { parseCifarBatch, untar, encodeTar } from './cifar.js';
