/**
 * The networks SNNL is trained on. Each model outputs its hidden representations (the layers SNNL is
 * taken on) and then its logits (or, for the autoencoder, its reconstruction), so one forward pass gives
 * everything a training step needs: tfjs has no activity regularizers, so snnl's own loop adds the terms.
 */
import * as tf from '@tensorflow/tfjs';
import { STREAMS } from '../random.js';
import { InputError } from '../errors.js';

export const MODEL_NAMES = ['mlp', 'cnn', 'cleverhans-cnn', 'resnet', 'autoencoder'] as const;
export type ModelName = (typeof MODEL_NAMES)[number];

export interface ModelOptions {
  /** mlp: widths of the hidden layers (default 500, 500). */
  widths?: number[];
  /** resnet: residual blocks per stage (default 3: ResNet-20). */
  blocks?: number;
  /** autoencoder: size of the code (default 32). */
  codeSize?: number;
}

export interface Network {
  /** The model's name: one of MODEL_NAMES for snnl's own, any for a user's. */
  name: string;
  model: tf.LayersModel;
  /** Names of the hidden representations, in the order the model outputs them (before the last output). */
  hiddenLayers: string[];
  /**
   * 'classifier': the last output is class logits; 'autoencoder': the logits of the input's reconstruction;
   * 'custom': a user's model trained on its own loss (`primary`), with no accuracy.
   */
  kind: 'classifier' | 'autoencoder' | 'custom';
  /**
   * A user's main loss: the model's last `outputs` outputs against the batch's targets (one tensor per
   * output), a scalar. Absent: cross-entropy of the class ids (or the autoencoder's BCE).
   */
  primary?: { outputs: number; loss: (outputs: tf.Tensor[], targets: tf.Tensor[]) => tf.Scalar };
  /** What a classifier's last output holds: logits (snnl's models; default) or softmax probabilities. */
  output?: 'logits' | 'probabilities';
}

/** The input shapes each model accepts. */
export function checkInputShape(name: ModelName, shape: [number, number, number]): void {
  if (name === 'resnet' && (shape[0] !== 32 || shape[1] !== 32 || shape[2] !== 3)) {
    throw new InputError(
      'model',
      `resnet takes 32x32x3 images (svhn, cifar10); this data set has ${shape.join('x')} ` +
        '(snnl train --input-shape 32x32x3 pads it and repeats its channel)',
    );
  }
  if ((name === 'cnn' || name === 'cleverhans-cnn') && shape[0] < 16) {
    throw new InputError('model', `${name} needs images of at least 16x16, got ${shape.join('x')}`);
  }
}

/**
 * PyTorch's defaults as the reference code uses them: Kaiming-normal (fan in, plain normal, not
 * truncated) for hidden layers, Xavier-uniform for the output, zero biases. Seeded, so a run is
 * reproducible to the bit.
 */
function initialize(model: tf.LayersModel, outputLayer: string, seed: number): void {
  let next = STREAMS.weights(seed);
  for (const layer of model.layers) {
    const weights = layer.getWeights();
    if (weights.length === 0 || !(layer instanceof tf.layers.Layer)) continue;
    const isBatchNorm = layer.getClassName() === 'BatchNormalization';
    if (isBatchNorm) continue;
    const replaced = weights.map((w, k) => {
      if (k > 0 || w.rank < 2) return tf.zerosLike(w);
      const fanIn = w.shape.slice(0, -1).reduce((a, n) => a * n, 1);
      const fanOut = w.shape.at(-1)! * (w.rank === 4 ? w.shape[0]! * w.shape[1]! : 1);
      if (layer.name === outputLayer) {
        const limit = Math.sqrt(6 / (fanIn + fanOut));
        return tf.randomUniform(w.shape, -limit, limit, 'float32', next++);
      }
      return tf.randomNormal(w.shape, 0, Math.sqrt(2 / fanIn), 'float32', next++);
    });
    layer.setWeights(replaced);
    tf.dispose(replaced);
  }
}

const dense = (units: number, name: string, activation?: 'relu' | 'sigmoid') =>
  tf.layers.dense({ units, name, ...(activation ? { activation } : {}) });

function mlp(input: tf.SymbolicTensor, classes: number, options: ModelOptions) {
  const widths = options.widths ?? [500, 500];
  let h = tf.layers.flatten({ name: 'flatten' }).apply(input) as tf.SymbolicTensor;
  const hidden: tf.SymbolicTensor[] = [];
  widths.forEach((w, k) => {
    h = dense(w, `fc${k + 1}`, 'relu').apply(h) as tf.SymbolicTensor;
    hidden.push(h);
  });
  return { hidden, output: dense(classes, 'logits').apply(h) as tf.SymbolicTensor };
}

/** docs/reference.md section 4: Conv(64,k8,s2,p1)-ReLU-Conv(128,k6,s2,p1)-ReLU-FC1024-FC1024-FC512-FC. */
function cnn(input: tf.SymbolicTensor, classes: number) {
  const conv = (filters: number, kernelSize: number, name: string, x: tf.SymbolicTensor) => {
    const padded = tf.layers.zeroPadding2d({ padding: 1, name: `${name}_pad` }).apply(x);
    return tf.layers
      .conv2d({ filters, kernelSize, strides: 2, padding: 'valid', activation: 'relu', name })
      .apply(padded) as tf.SymbolicTensor;
  };
  const conv1 = conv(64, 8, 'conv1', input);
  const conv2 = conv(128, 6, 'conv2', conv1);
  const flat = tf.layers.flatten({ name: 'flatten' }).apply(conv2) as tf.SymbolicTensor;
  const fc1 = dense(1024, 'fc1', 'relu').apply(flat) as tf.SymbolicTensor;
  const fc2 = dense(1024, 'fc2', 'relu').apply(fc1) as tf.SymbolicTensor;
  const fc3 = dense(512, 'fc3', 'relu').apply(fc2) as tf.SymbolicTensor;
  return { hidden: [conv1, conv2, fc1, fc2, fc3], output: dense(classes, 'logits').apply(fc3) as tf.SymbolicTensor };
}

/** The paper's reference CNN (cleverhans): conv 64 8x8 s2 same, conv 128 6x6 s2 valid, conv 128 5x5 valid. */
function cleverhansCnn(input: tf.SymbolicTensor, classes: number) {
  const conv = (filters: number, kernelSize: number, strides: number, padding: 'same' | 'valid', name: string) =>
    tf.layers.conv2d({ filters, kernelSize, strides, padding, activation: 'relu', name });
  const conv1 = conv(64, 8, 2, 'same', 'conv1').apply(input) as tf.SymbolicTensor;
  const conv2 = conv(128, 6, 2, 'valid', 'conv2').apply(conv1) as tf.SymbolicTensor;
  const conv3 = conv(128, 5, 1, 'valid', 'conv3').apply(conv2) as tf.SymbolicTensor;
  const flat = tf.layers.flatten({ name: 'flatten' }).apply(conv3) as tf.SymbolicTensor;
  return { hidden: [conv1, conv2, conv3], output: dense(classes, 'logits').apply(flat) as tf.SymbolicTensor };
}

/** A ResNet for 32x32x3 (He et al. 2016, section 4.2): 6n + 2 layers, stages of 16, 32 and 64 channels. */
function resnet(input: tf.SymbolicTensor, classes: number, options: ModelOptions) {
  const n = options.blocks ?? 3;
  const conv = (filters: number, strides: number, name: string) =>
    tf.layers.conv2d({ filters, kernelSize: 3, strides, padding: 'same', useBias: false, name });
  const bn = (name: string) => tf.layers.batchNormalization({ name, momentum: 0.9 });
  const relu = (name: string) => tf.layers.activation({ activation: 'relu', name });
  let h = relu('stem_relu').apply(bn('stem_bn').apply(conv(16, 1, 'stem').apply(input))) as tf.SymbolicTensor;
  const hidden: tf.SymbolicTensor[] = [];
  [16, 32, 64].forEach((filters, stage) => {
    for (let b = 0; b < n; b++) {
      const name = `s${stage + 1}b${b + 1}`;
      const strides = stage > 0 && b === 0 ? 2 : 1;
      let y = relu(`${name}_relu1`).apply(bn(`${name}_bn1`).apply(conv(filters, strides, `${name}_conv1`).apply(h)));
      y = bn(`${name}_bn2`).apply(conv(filters, 1, `${name}_conv2`).apply(y));
      const shortcut =
        strides === 1
          ? h
          : bn(`${name}_proj_bn`).apply(
              tf.layers.conv2d({ filters, kernelSize: 1, strides, useBias: false, name: `${name}_proj` }).apply(h),
            );
      h = relu(`${name}_out`).apply(
        tf.layers.add({ name: `${name}_add` }).apply([y as tf.SymbolicTensor, shortcut as tf.SymbolicTensor]),
      ) as tf.SymbolicTensor;
    }
    hidden.push(h);
  });
  const pooled = tf.layers.globalAveragePooling2d({ name: 'pool' }).apply(h) as tf.SymbolicTensor;
  hidden.push(pooled);
  return { hidden, output: dense(classes, 'logits').apply(pooled) as tf.SymbolicTensor };
}

/** x-500-500-2000-code-2000-500-500-x with a sigmoid code; the output is the reconstruction's logits. */
function autoencoder(input: tf.SymbolicTensor, options: ModelOptions, shape: number[]) {
  const size = shape.reduce((a, n) => a * n, 1);
  let h = tf.layers.flatten({ name: 'flatten' }).apply(input) as tf.SymbolicTensor;
  const hidden: tf.SymbolicTensor[] = [];
  const layer = (units: number, name: string, activation: 'relu' | 'sigmoid') => {
    h = dense(units, name, activation).apply(h) as tf.SymbolicTensor;
    hidden.push(h);
  };
  layer(500, 'enc1', 'relu');
  layer(500, 'enc2', 'relu');
  layer(2000, 'enc3', 'relu');
  layer(options.codeSize ?? 32, 'code', 'sigmoid');
  layer(2000, 'dec1', 'relu');
  layer(500, 'dec2', 'relu');
  layer(500, 'dec3', 'relu');
  // Logits of the reconstruction: the BCE loss applies the sigmoid (stable), and so does a reader.
  return { hidden, output: dense(size, 'reconstruction').apply(h) as tf.SymbolicTensor };
}

export function buildNetwork(
  name: ModelName,
  inputShape: [number, number, number],
  classes: number,
  seed: number,
  options: ModelOptions = {},
): Network {
  if (!(MODEL_NAMES as readonly string[]).includes(name)) {
    throw new InputError('model', `unknown model '${name}'; expected one of ${MODEL_NAMES.join(', ')}`);
  }
  checkInputShape(name, inputShape);
  const input = tf.input({ shape: inputShape, name: 'image' });
  const built =
    name === 'mlp'
      ? mlp(input, classes, options)
      : name === 'cnn'
        ? cnn(input, classes)
        : name === 'cleverhans-cnn'
          ? cleverhansCnn(input, classes)
          : name === 'resnet'
            ? resnet(input, classes, options)
            : autoencoder(input, options, inputShape);
  const model = tf.model({ inputs: input, outputs: [...built.hidden, built.output], name });
  const outputLayer = name === 'autoencoder' ? 'reconstruction' : 'logits';
  initialize(model, outputLayer, seed);
  return {
    name,
    model,
    hiddenLayers: built.hidden.map((t) => t.sourceLayer.name),
    kind: name === 'autoencoder' ? 'autoencoder' : 'classifier',
  };
}
