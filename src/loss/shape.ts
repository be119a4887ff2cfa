/** Shape helpers for per-row vectors: as a column [n, 1], a row [1, n], or flat [n]. */
import * as tf from '@tensorflow/tfjs-core';

export const asColumn = (t: tf.Tensor): tf.Tensor2D => tf.reshape(t, [-1, 1]);
export const asRow = (t: tf.Tensor): tf.Tensor2D => tf.reshape(t, [1, -1]);
export const asFlat = (t: tf.Tensor): tf.Tensor1D => tf.reshape(t, [-1]);

/**
 * A value computed on first use, inside whatever tf.tidy scope is then current: use it only where every
 * use falls inside the scope of the first.
 */
export function lazy<T>(make: () => T): () => T {
  let value: T | undefined;
  let made = false;
  return () => {
    if (!made) {
      value = make();
      made = true;
    }
    return value as T;
  };
}

/** Rows [start, end) of a 1-D or 2-D tensor (the tensor itself when that is all of it). */
export function rowSlice<T extends tf.Tensor2D | tf.Tensor1D>(x: T, start: number, end: number): T {
  if (start === 0 && end === x.shape[0]) return x;
  return (x.rank === 1 ? tf.slice(x, [start], [end - start]) : tf.slice(x, [start, 0], [end - start, -1])) as T;
}
