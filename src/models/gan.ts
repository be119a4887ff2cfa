/**
 * The small DCGAN of the real-vs-generated study (src/experiments/gan.ts): a generator from a normal code
 * through a dense layer and two stride-2 transposed convolutions to 28x28 pixels in [0, 1], and a
 * discriminator of two stride-2 convolutions with LeakyReLU and a dense output (one logit: real).
 * Weights are drawn from N(0, 0.02) (the DCGAN paper's), seeded, biases zero. The 'dcgan' generator (the
 * default) normalizes the dense layer's and the first transposed convolution's outputs by batch
 * normalization before their ReLU, as Radford et al. (2016) do; 'plain' is the earlier generator without it.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';

export interface GanShape {
  /** Size of the generator's code (default 64). */
  codeSize: number;
  /** The images' height, width and channels; height and width divisible by 4. */
  imageShape: [number, number, number];
  /** 'dcgan' (batch normalization before the generator's ReLUs; default) or 'plain' (none). */
  generator?: GeneratorKind;
}

export const GENERATOR_KINDS = ['dcgan', 'plain'] as const;
export type GeneratorKind = (typeof GENERATOR_KINDS)[number];

export interface Gan {
  generator: tf.LayersModel;
  discriminator: tf.LayersModel;
  /** The discriminator's hidden representations (the layers the study measures), in order. */
  discriminatorLayers: string[];
}

/** Seeds of the two networks' initializers, from the study's seed (one per layer, in order). */
const seedOf = (seed: number, network: 0 | 1, layer: number) => seed * 104729 + network * 1000 + layer;

export function buildGan(shape: GanShape, seed: number): Gan {
  const [h, w, c] = shape.imageShape;
  if (h % 4 !== 0 || w % 4 !== 0) {
    throw new InputError('dataset', `the GAN draws images whose height and width divide by 4, not ${h}x${w}`);
  }
  let layer = 0;
  const init = (network: 0 | 1) => ({
    kernelInitializer: tf.initializers.randomNormal({ mean: 0, stddev: 0.02, seed: seedOf(seed, network, layer++) }),
    biasInitializer: 'zeros' as const,
  });
  const code = tf.input({ shape: [shape.codeSize], name: 'code' });
  const normalized = (shape.generator ?? 'dcgan') === 'dcgan';
  // With batch normalization, a ReLU after it (the layer's own bias is then redundant, as in DCGAN).
  const relu = (x: tf.SymbolicTensor, name: string) =>
    normalized
      ? (tf.layers
          .activation({ activation: 'relu', name: `${name}_relu` })
          .apply(
            tf.layers.batchNormalization({ momentum: 0.9, epsilon: 1e-5, name: `${name}_bn` }).apply(x),
          ) as tf.SymbolicTensor)
      : x;
  let g = tf.layers
    .dense({
      units: (h / 4) * (w / 4) * 128,
      activation: normalized ? 'linear' : 'relu',
      useBias: !normalized,
      name: 'g_dense',
      ...init(0),
    })
    .apply(code) as tf.SymbolicTensor;
  g = relu(g, 'g_dense');
  g = tf.layers.reshape({ targetShape: [h / 4, w / 4, 128], name: 'g_reshape' }).apply(g) as tf.SymbolicTensor;
  const up = (filters: number, activation: 'relu' | 'sigmoid' | 'linear', name: string, x: tf.SymbolicTensor) =>
    tf.layers
      .conv2dTranspose({
        filters,
        kernelSize: 4,
        strides: 2,
        padding: 'same',
        activation,
        useBias: activation !== 'linear',
        name,
        ...init(0),
      })
      .apply(x) as tf.SymbolicTensor;
  const g1 = normalized ? relu(up(64, 'linear', 'g_up1', g), 'g_up1') : up(64, 'relu', 'g_up1', g);
  const image = up(c, 'sigmoid', 'g_image', g1);
  const generator = tf.model({ inputs: code, outputs: image, name: 'generator' });

  layer = 0;
  const input = tf.input({ shape: shape.imageShape, name: 'image' });
  const down = (filters: number, name: string, x: tf.SymbolicTensor) => {
    const conv = tf.layers
      .conv2d({ filters, kernelSize: 4, strides: 2, padding: 'same', name, ...init(1) })
      .apply(x) as tf.SymbolicTensor;
    return tf.layers.leakyReLU({ alpha: 0.2, name: `${name}_act` }).apply(conv) as tf.SymbolicTensor;
  };
  const d1 = down(64, 'd_conv1', input);
  const d2 = down(128, 'd_conv2', d1);
  const flat = tf.layers.flatten({ name: 'd_flatten' }).apply(d2) as tf.SymbolicTensor;
  const logit = tf.layers.dense({ units: 1, name: 'd_logit', ...init(1) }).apply(flat) as tf.SymbolicTensor;
  // The discriminator outputs its hidden layers, then the logit: one pass gives what the study measures.
  const discriminator = tf.model({ inputs: input, outputs: [d1, d2, logit], name: 'discriminator' });
  return { generator, discriminator, discriminatorLayers: ['d_conv1_act', 'd_conv2_act'] };
}

/** Non-saturating GAN losses from the discriminator's logits (softplus forms, stable). */
export const ganLosses = {
  /** -log D(real) - log(1 - D(fake)). */
  discriminator: (real: tf.Tensor, fake: tf.Tensor) =>
    tf.add(tf.mean(tf.softplus(tf.neg(real))), tf.mean(tf.softplus(fake))) as tf.Scalar,
  /** -log D(fake): the generator's non-saturating loss. */
  generator: (fake: tf.Tensor) => tf.mean(tf.softplus(tf.neg(fake))) as tf.Scalar,
};
