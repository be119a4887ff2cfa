/**
 * Batches of a split as tensors: a seeded shuffle per epoch (indices only; the bytes are never copied
 * as a whole), and each batch's pixels converted to normalized float32 on the way to the backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Dataset, ImageSplit, Normalization } from './datasets.js';

/** A seeded generator (mulberry32): the same seed gives the same shuffles on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, random: () => number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, k) => k);
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1));
    [order[k], order[j]] = [order[j]!, order[k]!];
  }
  return order;
}

export interface Batch {
  x: tf.Tensor4D;
  y: tf.Tensor1D;
  /** The labels as plain data too (SNNL takes them without a read-back). */
  labels: Int32Array;
}

/** The examples at `indices` as a normalized float32 NHWC tensor and int32 labels. */
export function gatherBatch(
  split: ImageSplit,
  shape: [number, number, number],
  normalization: Normalization,
  indices: ArrayLike<number>,
): Batch {
  const size = shape[0] * shape[1] * shape[2];
  const pixels = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  const scale = 1 / (255 * normalization.std);
  const shift = normalization.mean / normalization.std;
  for (let b = 0; b < indices.length; b++) {
    const from = indices[b]! * size;
    const to = b * size;
    for (let p = 0; p < size; p++) pixels[to + p] = split.images[from + p]! * scale - shift;
    labels[b] = split.labels[indices[b]!]!;
  }
  return { x: tf.tensor4d(pixels, [indices.length, ...shape]), y: tf.tensor1d(labels, 'int32'), labels };
}

export interface EpochOptions {
  batchSize: number;
  /** Seed of the shuffle; epoch e uses seed + e, so any epoch can be replayed on its own. */
  seed: number;
  epoch: number;
  /** Keep the last, smaller batch (default false: every batch has batchSize examples). */
  keepPartial?: boolean;
}

/** The index batches of one epoch of a split. */
export function epochOrder(count: number, options: EpochOptions): Int32Array[] {
  const order = permutation(count, seededRandom(options.seed * 1000003 + options.epoch));
  const batches: Int32Array[] = [];
  for (let start = 0; start < count; start += options.batchSize) {
    const end = Math.min(count, start + options.batchSize);
    if (end - start < options.batchSize && !options.keepPartial) break;
    batches.push(order.subarray(start, end));
  }
  return batches;
}

/** Iterates one epoch's batches of a data set's split as tensors (the caller disposes each). */
export function* epochBatches(dataset: Dataset, split: 'train' | 'test', options: EpochOptions): Generator<Batch> {
  const data = dataset[split];
  for (const indices of epochOrder(data.count, options)) {
    yield gatherBatch(data, dataset.imageShape, dataset.normalization, indices);
  }
}
