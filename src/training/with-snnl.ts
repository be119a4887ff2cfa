/**
 * SNNL for any tf.LayersModel: `trainWithSnnl` trains a user's own model with SNNL on the layers they
 * name (total = main loss + factor x sum of SNNL; the main loss cross-entropy by default, or any loss),
 * through the same loop as the command line (data handling: user-data.ts). It runs in Node and in the
 * browser; the model stays a normal tf.LayersModel (save and load it as usual).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import type { DistanceName } from '../loss/distance.js';
import type { PresetName } from '../loss/presets.js';
import type { Network } from '../models/models.js';
import { layerEntanglement } from './evaluate.js';
import { trainingTerm, unboundedWhenEntangling } from './entangling.js';
import { snnlLayers, temperatureAt, trainLoop, type EpochMetrics } from './loop.js';
import { FusedAdamOptimizer } from './optimizer.js';
import { TfjsCallbackDriver, type TfjsCallbacks } from './callbacks.js';
import { primaryLoss } from './step.js';
import {
  batchSource,
  classIds,
  targetsAndLabels,
  type LabelInput,
  type LabelledBatch,
  type TrainingData,
} from './user-data.js';

export { classIds, type LabelInput, type LabelledBatch, type TrainingData } from './user-data.js';
import { combinedLoss, resolveLosses, type LossFunction, type LossOption } from './losses.js';

const warned = new Set<string>();
/** One line on the console, once per message (a warning is not an error: training goes on). */
function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  console.warn(`snnl: warning: ${message}`);
}

export interface TrainWithSnnlOptions {
  /** a in total = main loss + a x SNNL term; a < 0 entangles the classes, a > 0 pulls them apart. */
  factor: number;
  /**
   * The main loss: a tfjs loss name ('meanSquaredError', 'binaryCrossentropy', ...; as model.compile
   * takes), a function (yTrue, yPred) => loss, or one per output (a list, or an object by output name).
   * Default: the loss the model was compiled with, else cross-entropy of class ids on its one output.
   * With it, the data's y are the loss's targets and SNNL's classes come from `labels` (see LabelledBatch).
   */
  loss?: LossOption;
  /** Layers with an SNNL term, by name. Default: every layer with weights but the output layer. */
  layers?: string[];
  /**
   * A number above 0, 'annealed' (1 / (1 + epoch)^0.55) or 'optimal' (one step per batch). Default 100;
   * 1, relative to the batch (relativeTemperature), when entangling with the default preset (see the README).
   */
  temperature?: number | 'annealed' | 'optimal';
  /**
   * The temperature in units of each batch's mean squared distance in each layer (scale-free). Default
   * false; true when entangling with the default preset and temperature.
   */
  relativeTemperature?: boolean;
  /** Default: squared Euclidean. */
  distance?: DistanceName;
  /** Default: 'stable'; the bounded 'cleverhans' form when entangling on squared Euclidean distance. */
  preset?: PresetName;
  /** How the layers' terms combine: their sum (default) or their minimum. */
  combine?: 'sum' | 'min';
  /**
   * Compare each batch with a memory bank of this many recent rows of each SNNL layer too (rows of earlier
   * batches, as constants), so rows find same-class partners when classes are many and batches small; the
   * stable form only (so not with the entangling default, the bounded cleverhans form). Default: none.
   */
  memoryBank?: number;
  /** Epochs (default 1). */
  epochs?: number;
  /** Batch size when the data are tensors (default 128). */
  batchSize?: number;
  /** Adam's learning rate when no optimizer is given (default 1e-3). */
  learningRate?: number;
  /** Any tf.Optimizer; default Adam (with snnl's fused update where the backend has it). */
  optimizer?: tf.Optimizer;
  /** Seed of the shuffles when the data are tensors (default 1234). */
  seed?: number;
  /** Measured after every epoch: accuracy (or the main loss), and each SNNL layer's entanglement. */
  validationData?: LabelledBatch;
  /**
   * tfjs callbacks: tf.Callback objects (tf.callbacks.earlyStopping, ...), tf.CustomCallback, or plain
   * {onTrainBegin, onEpochBegin, onBatchBegin, onBatchEnd, onEpochEnd, onTrainEnd} hooks, with tfjs's
   * logs (loss, acc, primary, snnl; val_loss and val_acc with validationData). Setting
   * model.stopTraining = true in one ends training after that batch or epoch, as model.fit does.
   */
  callbacks?: TfjsCallbacks;
  onBatchEnd?: (batch: number, logs: { loss: number; accuracy: number | null }) => void;
  onEpochEnd?: (epoch: number, metrics: EpochMetrics) => void | Promise<void>;
}

/** Each epoch's record, and beside them (`.history`) the tf.History of tfjs's logs, as model.fit returns. */
export type SnnlHistory = EpochMetrics[] & { history: tf.History };

/** The output of the layer `name` of `model`, with errors that say what is wrong. */
export function layerOutput(model: tf.LayersModel, name: string): tf.SymbolicTensor {
  const known = model.layers.map((l) => l.name);
  if (!known.includes(name)) {
    throw new InputError('layers', `the model has no layer '${name}'; it has ${known.join(', ')}`);
  }
  try {
    return model.getLayer(name).output as tf.SymbolicTensor;
  } catch {
    throw new InputError('layers', `layer '${name}' is used more than once in the model; name another layer`);
  }
}

/**
 * A Network view of a user's model: the same layers (shared weights) with the chosen layers' outputs
 * exposed. With `losses` (one per output), any number of outputs trained on those losses.
 */
export function networkOf(model: tf.LayersModel, layers?: string[], losses?: LossFunction[]): Network {
  if (!losses && model.outputs.length !== 1) {
    throw new InputError(
      'model',
      `expected one output (class scores), got ${model.outputs.length}; give a loss per output (options.loss)`,
    );
  }
  const outputLayers = model.outputs.map((o) => o.sourceLayer);
  const names =
    layers ?? model.layers.filter((l) => !outputLayers.includes(l) && l.weights.length > 0).map((l) => l.name);
  if (names.length === 0) throw new InputError('layers', 'the model has no hidden layer with weights; name the layers');
  const hidden = names.map((name) => layerOutput(model, name));
  const named = outputLayers.find((l) => names.includes(l.name));
  if (named) throw new InputError('layers', `'${named.name}' is an output layer; SNNL terms go on hidden layers`);
  if (losses) {
    return {
      name: model.name,
      model: tf.model({ inputs: model.inputs, outputs: [...hidden, ...model.outputs] }),
      hiddenLayers: names,
      kind: 'custom',
      primary: { outputs: model.outputs.length, loss: (outputs, targets) => combinedLoss(losses, outputs, targets) },
    };
  }
  const output = model.outputs[0]!;
  const outputLayer = output.sourceLayer;
  const activation = (outputLayer.getConfig() as { activation?: string }).activation;
  return {
    name: model.name,
    model: tf.model({ inputs: model.inputs, outputs: [...hidden, output] }),
    hiddenLayers: names,
    kind: 'classifier',
    output: activation === 'softmax' ? 'probabilities' : 'logits',
  };
}

function classesOf(model: tf.LayersModel): number {
  const classes = model.outputs[0]!.shape.at(-1);
  if (typeof classes !== 'number' || classes < 2) {
    throw new InputError(
      'model',
      `expected an output of class scores [batch, classes], got [${model.outputs[0]!.shape}]`,
    );
  }
  return classes;
}

/**
 * Trains `model` with SNNL on its named layers; returns the history of its epochs. The model's weights
 * are updated in place; it stays a normal tf.LayersModel.
 *
 * @example
 * const history = await trainWithSnnl(model, { x: images, y: labels }, { factor: -10, layers: ['dense1'], epochs: 3 });
 */
export async function trainWithSnnl(
  model: tf.LayersModel,
  data: TrainingData,
  options: TrainWithSnnlOptions,
): Promise<SnnlHistory> {
  if (!(model instanceof tf.LayersModel)) throw new InputError('model', 'expected a tf.LayersModel');
  if (typeof options?.factor !== 'number' || !Number.isFinite(options.factor)) {
    throw new InputError('factor', `expected a number (negative entangles), got ${String(options?.factor)}`);
  }
  const epochs = options.epochs ?? 1;
  if (!Number.isInteger(epochs) || epochs < 1)
    throw new InputError('epochs', `expected a whole number above 0, got ${epochs}`);
  const chosen = options.temperature;
  if (
    chosen !== undefined &&
    chosen !== 'annealed' &&
    chosen !== 'optimal' &&
    !(typeof chosen === 'number' && chosen > 0 && Number.isFinite(chosen))
  ) {
    throw new InputError('temperature', `expected a number above 0, 'annealed' or 'optimal', got ${String(chosen)}`);
  }
  // Entangling with no preset chosen trains the bounded form, relative to the batch (src/training/entangling.ts).
  const term = trainingTerm(options.factor, options);
  const rule = term.temperature;
  const unbounded = unboundedWhenEntangling(term.preset, term.distance, options.factor);
  if (unbounded !== undefined) warnOnce(unbounded);
  const bankSize = options.memoryBank;
  if (bankSize !== undefined) {
    if (!Number.isInteger(bankSize) || bankSize < 1)
      throw new InputError('memoryBank', `expected a whole number of rows from 1, got ${String(bankSize)}`);
    if (term.preset !== 'stable')
      throw new InputError(
        'memoryBank',
        `works with the stable preset (the log-sum-exp form); this run uses '${term.preset}' (set preset: 'stable')`,
      );
  }
  const losses = resolveLosses(model, options.loss);
  const network = networkOf(model, options.layers, losses);
  const classes = losses ? 0 : classesOf(model);
  const source = batchSource(data, options, classes, network);
  const snnlOptions = { distance: term.distance, preset: term.preset };
  const validation = options.validationData;
  const validationParts = validation
    ? network.primary
      ? targetsAndLabels(validation, network.primary.outputs, 'validationData')
      : { targets: undefined, labels: classIds(validation.y as LabelInput, validation.x.shape[0]!, 'validationData.y') }
    : undefined;
  const validationLabels = validationParts?.labels;
  const driver = new TfjsCallbackDriver(model, options.callbacks, {
    epochs,
    steps: source.batchCount?.(0),
    batchSize: data instanceof tf.data.Dataset || typeof data === 'function' ? undefined : (options.batchSize ?? 128),
    samples: data instanceof tf.data.Dataset || typeof data === 'function' ? undefined : data.x.shape[0],
    doValidation: validation !== undefined,
  });
  const optimizer = options.optimizer ?? new FusedAdamOptimizer(options.learningRate ?? 1e-3);
  try {
    await driver.trainBegin();
    const records = await trainLoop({
      network,
      optimizer,
      data: source,
      settings: {
        epochs,
        factor: options.factor,
        temperature: (epoch) => temperatureAt(rule, epoch),
        layers: snnlLayers(network, { layers: network.hiddenLayers, layerWeights: 'equal' }),
        combine: options.combine ?? 'sum',
        relativeTemperature: term.relativeTemperature,
        snnl: { ...snnlOptions, checkFinite: false },
        ...(bankSize !== undefined ? { memoryBank: bankSize } : {}),
      },
      callbacks: {
        ...driver.hooks({
          onBatchEnd: (p) => options.onBatchEnd?.(p.done - 1, { loss: p.loss, accuracy: p.accuracy }),
          onEpochEnd: (metrics) => options.onEpochEnd?.(metrics.epoch, metrics),
        }),
        ...(validation
          ? {
              evaluate: (_epoch: number, temperature: number | 'optimal') => {
                const outputs = network.model.predict(validation.x, { batchSize: 500 }) as tf.Tensor[];
                const hidden = network.hiddenLayers.length;
                const entanglementOf = () =>
                  layerEntanglement(
                    outputs.slice(0, hidden),
                    network.hiddenLayers,
                    validationLabels!,
                    term.measure,
                    temperature === 'optimal' ? 1 : temperature,
                  );
                if (network.primary) {
                  // A loss of the user's own: its value on the validation targets, no accuracy.
                  const loss = tf.tidy(() => network.primary!.loss(outputs.slice(hidden), validationParts!.targets!));
                  driver.setValidationLoss(loss.dataSync()[0]!);
                  loss.dispose();
                  const entanglement = entanglementOf();
                  tf.dispose(outputs);
                  return { test: { accuracy: null }, entanglement };
                }
                const truth = tf.tensor1d(validationLabels!, 'int32');
                const correct = tf.tidy(() =>
                  tf.sum(tf.cast(tf.equal(tf.argMax(outputs.at(-1)!, 1), truth), 'float32')),
                );
                const accuracy = correct.dataSync()[0]! / validationLabels!.length;
                const loss = tf.tidy(() =>
                  primaryLoss(
                    network,
                    { x: validation.x, y: truth, labels: validationLabels! },
                    outputs.at(-1)!,
                    classes,
                  ),
                );
                driver.setValidationLoss(loss.dataSync()[0]!);
                tf.dispose([loss, truth]);
                const entanglement = entanglementOf();
                tf.dispose([correct, ...outputs]);
                return { test: { accuracy }, entanglement };
              },
            }
          : {}),
      },
    });
    await driver.trainEnd();
    return Object.assign(records, { history: driver.history });
  } finally {
    if (options.optimizer === undefined) optimizer.dispose();
  }
}
