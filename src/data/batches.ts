/**
 * Batches of a split as tensors: a seeded shuffle per epoch (indices only; the bytes are never copied
 * as a whole), and each batch's pixels converted to normalized float32 on the way to the backend.
 */
import * as tf from '@tensorflow/tfjs-core';
import { permutation, seededRandom, STREAMS } from '../random.js';
import type { ImageSplit, Normalization } from './datasets.js';

export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor1D;
  /** The labels as plain data too (SNNL takes them without a read-back). */
  labels: Int32Array;
  /** A user's loss targets, one per model output (training with a loss of their own). */
  targets?: tf.Tensor[];
}

/** Frees a batch's tensors once its step is done. */
export function disposeBatch(batch: Batch): void {
  tf.dispose([batch.x, batch.y, ...(batch.targets ?? [])]);
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
  /** The run's seed; each epoch's shuffle is its own stream of it (src/random.ts). */
  seed: number;
  epoch: number;
  /** Keep the last, smaller batch (default false: every batch has batchSize examples). */
  keepPartial?: boolean;
}

/** The index batches of one epoch of a split. */
export function epochOrder(count: number, options: EpochOptions): Int32Array[] {
  const order = permutation(count, seededRandom(STREAMS.shuffle(options.seed, options.epoch)));
  const batches: Int32Array[] = [];
  for (let start = 0; start < count; start += options.batchSize) {
    const end = Math.min(count, start + options.batchSize);
    if (end - start < options.batchSize && !options.keepPartial) break;
    batches.push(order.subarray(start, end));
  }
  return batches;
}
