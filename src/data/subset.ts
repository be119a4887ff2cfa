/** A data set with its training split cut to a seeded choice of examples (quick runs, tests). */
import { permutation, stream } from '../random.js';
import type { Dataset } from './datasets.js';

/** The data set with `size` training examples chosen by `seed` (all of them when `size` is undefined or larger). */
export function withTrainSubset(dataset: Dataset, size: number | undefined, seed: number): Dataset {
  if (size === undefined || size >= dataset.train.count) return dataset;
  const chosen = permutation(dataset.train.count, stream('trainSubset', seed)).subarray(0, size);
  const pixels = dataset.imageShape.reduce((a, v) => a * v, 1);
  const images = new Uint8Array(size * pixels);
  const labels = new Uint8Array(size);
  chosen.forEach((from, to) => {
    images.set(dataset.train.images.subarray(from * pixels, (from + 1) * pixels), to * pixels);
    labels[to] = dataset.train.labels[from]!;
  });
  return { ...dataset, train: { images, labels, count: size } };
}
