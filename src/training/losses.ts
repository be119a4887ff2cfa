/**
 * The main loss of a user's model, beside which SNNL trains: a tfjs loss name (as model.compile takes
 * them), a function (yTrue, yPred) => per-example or scalar loss, one per output for a model with several
 * outputs (a list, or an object by output name), or the loss the model was compiled with. Each output's
 * loss is averaged over its examples and the outputs' losses are summed, as model.fit does.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';

export type LossFunction = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;
export type LossSpec = string | LossFunction;
export type LossOption = LossSpec | LossSpec[] | Record<string, LossSpec>;

/** Sparse categorical cross-entropy of probabilities against class ids (Keras's, clipped as it clips). */
const sparseCategoricalCrossentropy: LossFunction = (yTrue, yPred) =>
  tf.tidy(() => {
    const classes = yPred.shape.at(-1)!;
    const oneHot = tf.oneHot(tf.cast(tf.reshape(yTrue, [-1]), 'int32'), classes);
    return tf.metrics.categoricalCrossentropy(oneHot, yPred);
  });

/** Names model.compile accepts, and their short forms. */
export const LOSS_NAMES: Record<string, LossFunction> = {
  meanSquaredError: tf.metrics.meanSquaredError,
  mse: tf.metrics.meanSquaredError,
  MSE: tf.metrics.meanSquaredError,
  meanAbsoluteError: tf.metrics.meanAbsoluteError,
  mae: tf.metrics.meanAbsoluteError,
  MAE: tf.metrics.meanAbsoluteError,
  meanAbsolutePercentageError: tf.metrics.meanAbsolutePercentageError,
  mape: tf.metrics.meanAbsolutePercentageError,
  MAPE: tf.metrics.meanAbsolutePercentageError,
  binaryCrossentropy: tf.metrics.binaryCrossentropy,
  categoricalCrossentropy: tf.metrics.categoricalCrossentropy,
  sparseCategoricalCrossentropy,
  cosineProximity: tf.metrics.cosineProximity,
};

function resolveOne(spec: LossSpec, subject: string): LossFunction {
  if (typeof spec === 'function') return spec;
  const found = typeof spec === 'string' ? LOSS_NAMES[spec] : undefined;
  if (!found)
    throw new InputError(
      subject,
      `unknown loss ${JSON.stringify(spec)}; expected a function (yTrue, yPred) => loss or one of ${Object.keys(LOSS_NAMES).join(', ')}`,
    );
  return found;
}

/**
 * One loss function per output of `model`, from `loss` or, when it is absent, from the model's compiled
 * loss; undefined when neither is given (snnl's default: cross-entropy of class ids on one output).
 */
export function resolveLosses(model: tf.LayersModel, loss: LossOption | undefined): LossFunction[] | undefined {
  const compiled = (model as unknown as { loss?: LossOption }).loss;
  const chosen = loss ?? compiled;
  const subject = loss !== undefined ? 'loss' : 'model.loss (compiled)';
  if (chosen === undefined) return undefined;
  const outputs = model.outputs.map((o) => o.sourceLayer.name);
  if (Array.isArray(chosen)) {
    if (chosen.length !== outputs.length)
      throw new InputError(subject, `has ${chosen.length} losses for the model's ${outputs.length} outputs`);
    return chosen.map((spec, k) => resolveOne(spec, `${subject}[${k}]`));
  }
  if (typeof chosen === 'object') {
    const byName = chosen;
    const unknown = Object.keys(byName).filter((name) => !outputs.includes(name));
    if (unknown.length > 0)
      throw new InputError(subject, `names no output ${unknown.join(', ')}; the outputs are ${outputs.join(', ')}`);
    return outputs.map((name) => {
      if (byName[name] === undefined) throw new InputError(subject, `has no loss for output ${name}`);
      return resolveOne(byName[name], `${subject}.${name}`);
    });
  }
  // One loss for every output (Keras applies it to each).
  const one = resolveOne(chosen, subject);
  return outputs.map(() => one);
}

/** The summed mean losses of `outputs` against `targets` (one each). */
export function combinedLoss(losses: LossFunction[], outputs: tf.Tensor[], targets: tf.Tensor[]): tf.Scalar {
  return tf.tidy(() => tf.addN(losses.map((fn, k) => tf.mean(fn(targets[k]!, outputs[k]!))))) as tf.Scalar;
}
