/**
 * Batches with partners, for SNNL with many classes and small batches (where most rows of a random batch
 * have no same-class partner and add no term):
 *
 * - balancedBatches: each batch holds `perClass` examples of each of `classesPerBatch` classes, seeded;
 *   the classes of a batch drawn at random, each class's examples taken in a shuffled order that restarts
 *   when used up.
 * - MemoryBank: the most recent embeddings and their labels (a fixed number of rows, oldest dropped), a
 *   reference set for snnlWithReference (the loss's batch rows against the bank).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { permutation, seededRandom } from '../random.js';
import type { LabelledBatch } from './with-snnl.js';

export interface BalancedOptions {
  classesPerBatch: number;
  perClass: number;
  seed?: number;
  /** Batches per epoch (default: as many as the examples fill, n / batch size). */
  batches?: number;
}

/** Index batches of `labels`: per epoch, `batches` arrays of classesPerBatch x perClass indices. */
export function balancedIndices(labels: ArrayLike<number>, options: BalancedOptions): (epoch: number) => Int32Array[] {
  const { classesPerBatch: c, perClass: m } = options;
  if (!Number.isInteger(c) || c < 1)
    throw new InputError('classesPerBatch', `expected a whole number from 1, got ${c}`);
  if (!Number.isInteger(m) || m < 2)
    throw new InputError('perClass', `expected a whole number from 2 (a partner for every row), got ${m}`);
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < labels.length; i++) byClass.set(labels[i]!, [...(byClass.get(labels[i]!) ?? []), i]);
  const classes = [...byClass.keys()].sort((a, b) => a - b);
  if (classes.length < c)
    throw new InputError('classesPerBatch', `is ${c}, but the labels hold ${classes.length} classes`);
  const count = options.batches ?? Math.max(1, Math.floor(labels.length / (c * m)));
  const seed = options.seed ?? 1234;
  return (epoch) => {
    const random = seededRandom((seed * 1000003 + epoch * 7919) >>> 0);
    // Each class's examples in a shuffled order, restarting (reshuffled) when used up.
    const queues = new Map<number, { order: Int32Array; next: number }>();
    // m examples of a class: a fresh shuffle when fewer than m are left, so no example repeats within a batch
    // (a class with fewer than m examples repeats some).
    const take = (cls: number): number[] => {
      const members = byClass.get(cls)!;
      let q = queues.get(cls);
      if (!q || q.order.length - q.next < Math.min(m, members.length)) {
        q = { order: permutation(members.length, random), next: 0 };
        queues.set(cls, q);
      }
      const out: number[] = [];
      for (let b = 0; b < m; b++) {
        if (q.next === q.order.length) q = { order: permutation(members.length, random), next: 0 };
        out.push(members[q.order[q.next++]!]!);
      }
      queues.set(cls, q);
      return out;
    };
    const out: Int32Array[] = [];
    for (let k = 0; k < count; k++) {
      const chosen = permutation(classes.length, random).slice(0, c);
      const batch = new Int32Array(c * m);
      chosen.forEach((ci, a) => batch.set(take(classes[ci]!), a * m));
      out.push(batch);
    }
    return out;
  };
}

/** trainWithSnnl data: class-balanced batches of `x` with class ids `y` (see balancedIndices). */
export function balancedBatches(
  x: tf.Tensor,
  y: ArrayLike<number>,
  options: BalancedOptions,
): (epoch: number) => Iterable<LabelledBatch> {
  if (y.length !== x.shape[0]) throw new InputError('y', `has ${y.length} labels for ${x.shape[0]} examples`);
  const indices = balancedIndices(y, options);
  return function* (epoch) {
    for (const batch of indices(epoch)) {
      const picked = Array.from(batch);
      yield { x: tf.gather(x, picked), y: Int32Array.from(picked, (i) => y[i]!) };
    }
  };
}

/** The last `size` embeddings pushed, with their labels (oldest dropped first). Dispose when done. */
export class MemoryBank {
  private rows: tf.Tensor2D | null = null;
  private ids = new Int32Array(0);

  constructor(readonly size: number) {
    if (!Number.isInteger(size) || size < 1)
      throw new InputError('size', `expected a whole number from 1, got ${size}`);
  }

  /** Adds a batch's rows (copied, so the caller may dispose its own), keeping the last `size`. */
  push(h: tf.Tensor, labels: ArrayLike<number>): void {
    const flat = tf.tidy(() => tf.reshape(h, [h.shape[0]!, -1]) as tf.Tensor2D);
    if (labels.length !== flat.shape[0]) {
      flat.dispose();
      throw new InputError('labels', `has ${labels.length} labels for ${flat.shape[0]} rows`);
    }
    if (this.rows && this.rows.shape[1] !== flat.shape[1]) {
      flat.dispose();
      throw new InputError('features', `have ${flat.shape[1]} values per row; the bank holds ${this.rows.shape[1]}`);
    }
    const joined = this.rows ? tf.concat([this.rows, flat], 0) : flat.clone();
    const ids = Int32Array.from([...this.ids, ...Array.from(labels)]);
    const drop = Math.max(0, joined.shape[0] - this.size);
    const kept = drop > 0 ? tf.slice(joined, drop) : joined;
    if (kept !== joined) joined.dispose();
    tf.dispose([flat, ...(this.rows ? [this.rows] : [])]);
    this.rows = kept as tf.Tensor2D;
    this.ids = ids.slice(drop);
  }

  get features(): tf.Tensor2D | null {
    return this.rows;
  }

  get labels(): Int32Array {
    return this.ids;
  }

  dispose(): void {
    this.rows?.dispose();
    this.rows = null;
    this.ids = new Int32Array(0);
  }
}
