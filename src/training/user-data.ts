/**
 * A user's training data as the loop takes it: tensors shuffled into batches each epoch, a tf.data.Dataset,
 * or a function of the epoch; class ids (or one-hot rows) for the default loss, or a loss's own targets with
 * SNNL's class ids beside them.
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import { InputError } from '../errors.js';
import type { Network } from '../models/models.js';
import { permutation, seededRandom, STREAMS } from '../random.js';
import type { BatchSource } from './loop.js';

/** Labels: class ids (a 1-D tensor or array of whole numbers) or one-hot rows (a 2-D tensor). */
export type LabelInput = tf.Tensor | ArrayLike<number>;

/**
 * One batch a user's data yields: inputs x, and y, the main loss's targets (class ids or one-hot rows by
 * default; with `loss`, whatever that loss takes: a tensor, or one per output). `labels`: the class ids
 * SNNL groups by, where y holds no class ids (regression, several outputs); default the classes of y.
 */
export interface LabelledBatch {
  x: tf.Tensor;
  y: LabelInput | tf.Tensor[];
  labels?: LabelInput;
}

/**
 * Training data: tensors (split into shuffled batches of `batchSize` every epoch), a tf.data.Dataset of
 * {x, y} batches, or a function giving each epoch's batches (an iterable or async iterable). Batches that
 * a dataset or function yields are disposed after their step, as model.fitDataset does.
 */
export type TrainingData =
  | LabelledBatch
  | tf.data.Dataset<{ x: tf.Tensor; y: tf.Tensor | tf.Tensor[]; labels?: tf.Tensor }>
  | ((epoch: number) => Iterable<LabelledBatch> | AsyncIterable<LabelledBatch>);

/** Class ids from labels given as ids or as one-hot rows. */
export function classIds(y: LabelInput, rows: number, subject: string): Int32Array {
  let values: ArrayLike<number>;
  if (y instanceof tf.Tensor) {
    if (y.rank === 2) values = tf.tidy(() => tf.argMax(y, 1)).dataSync();
    else if (y.rank === 1) values = y.dataSync();
    else throw new InputError(subject, `expected class ids [n] or one-hot rows [n, classes], got shape [${y.shape}]`);
  } else values = y;
  if (values.length !== rows) {
    throw new InputError(subject, `has ${values.length} labels for ${rows} examples`);
  }
  const ids = Int32Array.from(values as ArrayLike<number>);
  const bad = ids.findIndex((v, i) => v !== (values as ArrayLike<number>)[i] || v < 0);
  if (bad >= 0)
    throw new InputError(subject, `label ${bad} is ${(values as ArrayLike<number>)[bad]}; expected a class id from 0`);
  return ids;
}

const isTensorList = (y: unknown): y is tf.Tensor[] => Array.isArray(y) && y[0] instanceof tf.Tensor;

/** The loss's targets (one tensor per output) and SNNL's class ids of a user's batch, for a loss of their own. */
export function targetsAndLabels(item: LabelledBatch, outputs: number, subject: string) {
  const rows = item.x.shape[0]!;
  const targets = isTensorList(item.y) ? item.y : [item.y];
  if (targets.length !== outputs || !targets.every((t) => t instanceof tf.Tensor))
    throw new InputError(
      `${subject}.y`,
      `expected ${outputs === 1 ? 'a tensor' : `${outputs} tensors (one per output)`} of targets`,
    );
  targets.forEach((t, k) => {
    if ((t as tf.Tensor).shape[0] !== rows)
      throw new InputError(`${subject}.y`, `target ${k} has ${(t as tf.Tensor).shape[0]} rows for ${rows} examples`);
  });
  let labels: Int32Array;
  if (item.labels !== undefined) labels = classIds(item.labels, rows, `${subject}.labels`);
  else {
    try {
      // Targets that are class ids themselves: 1-D whole numbers, or one-hot rows (exactly one 1 a row).
      const y = targets.length === 1 ? (targets[0] as tf.Tensor) : undefined;
      const oneHot =
        y?.rank === 2 &&
        y.shape[1]! > 1 &&
        tf.tidy(() => {
          const zeroOne = tf.all(tf.logicalOr(tf.equal(y, 0), tf.equal(y, 1)));
          return tf.logicalAnd(zeroOne, tf.all(tf.equal(tf.sum(y, 1), 1))).dataSync()[0] === 1;
        });
      if (!y || !(y.rank === 1 || oneHot)) throw new Error('no class ids');
      labels = classIds(y, rows, `${subject}.y`);
    } catch {
      throw new InputError(
        `${subject}.labels`,
        "needed with this loss: the class ids SNNL groups by, one per example (y holds the loss's targets)",
      );
    }
  }
  return { targets: targets as tf.Tensor[], labels };
}

function toBatch(item: LabelledBatch, classes: number, network: Network): Batch {
  if (!(item?.x instanceof tf.Tensor)) throw new InputError('data', 'each batch must be {x: tf.Tensor, y: labels}');
  if (network.primary) {
    const { targets, labels } = targetsAndLabels(item, network.primary.outputs, 'data');
    if (item.labels instanceof tf.Tensor) item.labels.dispose();
    return { x: item.x, y: tf.tensor1d(labels, 'int32'), labels, targets };
  }
  if (Array.isArray(item.y))
    throw new InputError('data', 'y holds several tensors; give a loss per output (options.loss)');
  const labels = classIds(item.y, item.x.shape[0]!, 'data');
  const tooLarge = labels.findIndex((v) => v >= classes);
  if (tooLarge >= 0)
    throw new InputError('data', `label ${labels[tooLarge]} is not below the model's ${classes} classes`);
  if (item.y instanceof tf.Tensor) item.y.dispose();
  return { x: item.x, y: tf.tensor1d(labels, 'int32'), labels };
}

export function batchSource(
  data: TrainingData,
  options: { batchSize?: number; seed?: number },
  classes: number,
  network: Network,
): BatchSource {
  if (typeof data === 'function') {
    return {
      classes,
      async *batches(epoch) {
        for await (const item of data(epoch)) yield toBatch(item, classes, network);
      },
    };
  }
  if (data instanceof tf.data.Dataset) {
    return {
      classes,
      async *batches() {
        const iterator = await data.iterator();
        for (let next = await iterator.next(); !next.done; next = await iterator.next())
          yield toBatch(next.value, classes, network);
      },
    };
  }
  if (!(data?.x instanceof tf.Tensor)) {
    throw new InputError(
      'data',
      'expected {x, y} tensors, a tf.data.Dataset of {x, y}, or a function (epoch) => batches',
    );
  }
  const { x } = data;
  const n = x.shape[0]!;
  const custom = network.primary ? targetsAndLabels(data, network.primary.outputs, 'data') : undefined;
  if (!custom && isTensorList(data.y))
    throw new InputError('data.y', 'holds several tensors; give a loss per output (options.loss)');
  const labels = custom ? custom.labels : classIds(data.y as LabelInput, n, 'data.y');
  const tooLarge = custom ? -1 : labels.findIndex((v) => v >= classes);
  if (tooLarge >= 0)
    throw new InputError('data.y', `label ${labels[tooLarge]} is not below the model's ${classes} classes`);
  const batchSize = options.batchSize ?? 128;
  if (!Number.isInteger(batchSize) || batchSize < 2) {
    throw new InputError('batchSize', `expected a whole number of at least 2, got ${String(batchSize)}`);
  }
  if (n < batchSize) throw new InputError('batchSize', `${n} examples make no batch of ${batchSize}; lower it`);
  const seed = options.seed ?? 1234;
  const order = (epoch: number) => permutation(n, seededRandom(STREAMS.shuffle(seed, epoch)));
  return {
    classes,
    batchCount: () => Math.floor(n / batchSize),
    *batches(epoch) {
      const shuffled = order(epoch);
      for (let start = 0; start + batchSize <= n; start += batchSize) {
        const indices = shuffled.subarray(start, start + batchSize);
        const ids = Int32Array.from(indices, (i) => labels[i]!);
        const picked = Array.from(indices);
        yield {
          x: tf.gather(x, picked),
          y: tf.tensor1d(ids, 'int32'),
          labels: ids,
          ...(custom ? { targets: custom.targets.map((t) => tf.gather(t, picked)) } : {}),
        };
      }
    },
  };
}
