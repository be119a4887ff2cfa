/**
 * SNNL for any tf.LayersModel: `trainWithSnnl` trains a user's own classifier with SNNL on the layers
 * they name (total = cross-entropy + factor x sum of SNNL), through the same loop as the command line,
 * and `measureLayers` measures the entanglement of every named layer. Both run in Node and in the
 * browser; the model stays a normal tf.LayersModel (save and load it as usual).
 */
import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/batches.js';
import { InputError } from '../errors.js';
import type { DistanceName } from '../loss/distance.js';
import type { PresetName } from '../loss/presets.js';
import { permutation, seededRandom, STREAMS } from '../random.js';
import type { Network } from '../models/models.js';
import { layerEntanglement } from './evaluate.js';
import { trainingTerm, unboundedWhenEntangling } from './entangling.js';
import { snnlLayers, temperatureAt, trainLoop, type BatchSource, type EpochMetrics } from './loop.js';
import { FusedAdamOptimizer } from './optimizer.js';
import { TfjsCallbackDriver, type TfjsCallbacks } from './callbacks.js';
import { primaryLoss } from './step.js';
import { combinedLoss, resolveLosses, type LossFunction, type LossOption } from './losses.js';

const warned = new Set<string>();
/** One line on the console, once per message (a warning is not an error: training goes on). */
function warnOnce(message: string): void {
  if (warned.has(message)) return;
  warned.add(message);
  console.warn(`snnl: warning: ${message}`);
}

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

const isTensorList = (y: unknown): y is tf.Tensor[] => Array.isArray(y) && y[0] instanceof tf.Tensor;

/** The loss's targets (one tensor per output) and SNNL's class ids of a user's batch, for a loss of their own. */
function targetsAndLabels(item: LabelledBatch, outputs: number, subject: string) {
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

function batchSource(
  data: TrainingData,
  options: TrainWithSnnlOptions,
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
