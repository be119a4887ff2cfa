/**
 * tfjs's callbacks for trainWithSnnl: tf.Callback objects (tf.callbacks.earlyStopping among them),
 * tf.CustomCallback or its plain {onEpochEnd, ...} arguments, called with tfjs's hooks and logs, and a
 * tf.History of the epochs' logs, as model.fit gives them.
 *
 * Logs: loss (total: primary + factor x SNNL term), primary (the cross-entropy), snnl (the SNNL term), acc;
 * with validation data, val_loss (the cross-entropy on it: what earlyStopping watches by default) and
 * val_acc. Batch logs carry the batch's own figures, with batch and size.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import type { BatchProgress, EpochMetrics, LoopCallbacks } from './loop.js';

/** A tfjs callback object (tf.Callback, tf.CustomCallback, tf.History, earlyStopping's), by its shape. */
export interface TfjsCallbackObject {
  setParams(params: never): void;
  setModel(model: never): void;
}

/**
 * What trainWithSnnl's `callbacks` takes: one or a list of tfjs callback objects or plain hooks (typed
 * as tf.CustomCallbackArgs, so a literal's parameters need no annotation).
 */
export type TfjsCallbacks =
  tf.CustomCallbackArgs | TfjsCallbackObject | Array<tf.CustomCallbackArgs | TfjsCallbackObject>;

type Logs = Record<string, number>;
type Callback = ConstructorParameters<typeof tf.CallbackList>[0] extends (infer C)[] | undefined ? C : never;

function isCallbackObject(value: unknown): value is Callback {
  const c = value as { setParams?: unknown; setModel?: unknown };
  return typeof c?.setParams === 'function' && typeof c?.setModel === 'function';
}

function standardize(callbacks: TfjsCallbacks | undefined): Callback[] {
  if (callbacks === undefined) return [];
  const list = Array.isArray(callbacks) ? callbacks : [callbacks];
  return list.map((c, i) => {
    if (isCallbackObject(c)) return c as Callback;
    if (typeof c !== 'object' || c === null) {
      throw new InputError('callbacks', `item ${i} is ${String(c)}; expected a tf.Callback or {onEpochEnd, ...}`);
    }
    // Plain hooks, as model.fit takes them; 'never' so that no step waits for a frame.
    return new tf.CustomCallback(c as tf.CustomCallbackArgs, 'never');
  });
}

export interface CallbackParams {
  epochs: number;
  /** Batches per epoch, where known. */
  steps: number | undefined;
  batchSize: number | undefined;
  samples: number | undefined;
  doValidation: boolean;
}

/** The hooks of the training loop that drive a tfjs CallbackList for `model`, and its History. */
export class TfjsCallbackDriver {
  readonly history = new tf.History();
  private readonly list: tf.CallbackList;
  private validationLoss: number | undefined;

  constructor(
    private readonly model: tf.LayersModel,
    callbacks: TfjsCallbacks | undefined,
    params: CallbackParams,
  ) {
    this.list = new tf.CallbackList([...standardize(callbacks), this.history]);
    const metrics = ['loss', 'acc', 'primary', 'snnl', ...(params.doValidation ? ['val_loss', 'val_acc'] : [])];
    this.list.setParams({
      epochs: params.epochs,
      initialEpoch: 0,
      samples: params.samples ?? null,
      steps: params.steps ?? null,
      batchSize: params.batchSize ?? null,
      verbose: 0,
      doValidation: params.doValidation,
      metrics,
    } as unknown as Parameters<tf.CallbackList['setParams']>[0]);
    this.list.setModel(model);
  }

  async trainBegin(): Promise<void> {
    if (this.model instanceof tf.Sequential) {
      // An uncompiled Sequential has no inner model yet, and its stopTraining throws until it has one;
      // compile() would build it, and so does build() (the same layers, nothing else changes).
      try {
        void this.model.stopTraining;
      } catch {
        this.model.build();
      }
    }
    this.model.stopTraining = false;
    await this.list.onTrainBegin();
  }

  async trainEnd(): Promise<void> {
    await this.list.onTrainEnd();
    await this.history.syncData();
  }

  /** The validation cross-entropy of the epoch being evaluated (the loop's evaluate hook sets it). */
  setValidationLoss(loss: number): void {
    this.validationLoss = loss;
  }

  /** The loop's hooks; `then` receives the same events after the tfjs callbacks (the older options). */
  hooks(then: Pick<LoopCallbacks, 'onBatchEnd' | 'onEpochEnd'> = {}): LoopCallbacks {
    return {
      onEpochBegin: (epoch) => this.list.onEpochBegin(epoch - 1),
      onBatchBegin: (_epoch, batch) => this.list.onBatchBegin(batch, { batch, size: 0 }),
      onBatchEnd: async (p: BatchProgress) => {
        const b = p.batch;
        const logs: Logs = { batch: p.done - 1, size: b.size, loss: b.loss, primary: b.primary, snnl: b.snnl };
        if (p.accuracy !== null) logs['acc'] = b.correct / b.size;
        await this.list.onBatchEnd(p.done - 1, logs);
        await then.onBatchEnd?.(p);
      },
      onEpochEnd: async (metrics: EpochMetrics, state) => {
        const logs: Logs = { loss: metrics.train.loss, primary: metrics.train.primary, snnl: metrics.train.snnl };
        if (metrics.train.accuracy !== null) logs['acc'] = metrics.train.accuracy;
        if (this.validationLoss !== undefined) logs['val_loss'] = this.validationLoss;
        if (metrics.test.accuracy !== null) logs['val_acc'] = metrics.test.accuracy;
        this.validationLoss = undefined;
        await this.list.onEpochEnd(metrics.epoch - 1, logs);
        await then.onEpochEnd?.(metrics, state);
      },
      stopRequested: () => this.model.stopTraining,
    };
  }
}
