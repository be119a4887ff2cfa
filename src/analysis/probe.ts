/**
 * What a trained classifier does with a set of images: each chosen layer's representation (flattened,
 * in JavaScript memory, in chunks), its softmax, and, for the adversarial studies, the fast gradient sign
 * method (Goodfellow et al. 2015) and the sign of the cross-entropy's gradient with respect to the input.
 * Images come as pixels in [0, 1]; the network's own normalization is applied inside.
 */
import * as tf from '@tensorflow/tfjs';
import type { Normalization } from '../data/datasets.js';
import type { PixelSet } from '../data/outliers.js';
import { InputError } from '../errors.js';
import type { Network } from '../models/models.js';
import { seededRandom } from '../random.js';
import type { FeatureChunks, FeatureMatrix } from './knn.js';

/** The network's outputs by name: its hidden layers, then its last layer (the logits). */
export function outputNames(net: Network): string[] {
  const last = net.model.outputs.at(-1)!.sourceLayer.name;
  return [...net.hiddenLayers, last];
}

/** Indices into the network's outputs of `layers` (names), or an InputError naming the unknown one. */
export function layerIndices(net: Network, layers: string[]): number[] {
  const names = outputNames(net);
  return layers.map((name) => {
    const k = names.indexOf(name);
    if (k < 0) throw new InputError('layers', `the network has no layer "${name}"; its layers are ${names.join(', ')}`);
    return k;
  });
}

function normalized(pixels: tf.Tensor, norm: Normalization): tf.Tensor {
  return tf.div(tf.sub(pixels, norm.mean), norm.std);
}

function pixelChunk(set: PixelSet, shape: [number, number, number], start: number, end: number): tf.Tensor4D {
  const size = shape[0] * shape[1] * shape[2];
  return tf.tensor4d(set.pixels.subarray(start * size, end * size), [end - start, ...shape]);
}

export interface Probe {
  /** Per chosen layer, its [count, dim] features in chunks of at most `chunk` rows. */
  features: FeatureChunks[];
  /** [count, classes] softmax of the logits. */
  probabilities: Float32Array;
  /** [count, classes] the last layer's output as it is: logits (null for a network ending in softmax). */
  logits: Float32Array | null;
}

/** Features of `layers` (indices into the outputs) and the softmax of every image of `set`, `chunk` at a time. */
export function probe(
  net: Network,
  set: PixelSet,
  shape: [number, number, number],
  norm: Normalization,
  layers: number[],
  chunk = 1000,
): Probe {
  const features: FeatureChunks[] = layers.map(() => []);
  const classes = net.model.outputs.at(-1)!.shape.at(-1)!;
  const probabilities = new Float32Array(set.count * classes);
  const logits = net.output === 'probabilities' ? null : new Float32Array(set.count * classes);
  for (let start = 0; start < set.count; start += chunk) {
    const end = Math.min(set.count, start + chunk);
    const outs = tf.tidy(() => {
      const x = normalized(pixelChunk(set, shape, start, end), norm);
      const outputs = net.model.predict(x, { batchSize: Math.min(chunk, 500) }) as tf.Tensor[];
      const last = outputs.at(-1)!;
      const probs = net.output === 'probabilities' ? last : tf.softmax(last);
      return [...layers.map((k) => tf.reshape(outputs[k]!, [end - start, -1])), last, probs];
    });
    probabilities.set(outs.at(-1)!.dataSync(), start * classes);
    logits?.set(outs.at(-2)!.dataSync(), start * classes);
    layers.forEach((_, l) => {
      const t = outs[l]!;
      features[l]!.push({ rows: end - start, dim: t.shape[1]!, values: t.dataSync() as Float32Array });
    });
    tf.dispose(outs);
  }
  return { features, probabilities, logits };
}

/** The chunks as one matrix. */
export function joinChunks(chunks: FeatureChunks): FeatureMatrix {
  const dim = chunks[0]?.dim ?? 0;
  const rows = chunks.reduce((n, c) => n + c.rows, 0);
  if (chunks.length === 1) return chunks[0]!;
  const values = new Float32Array(rows * dim);
  let offset = 0;
  for (const c of chunks) {
    values.set(c.values.subarray(0, c.rows * dim), offset);
    offset += c.rows * dim;
  }
  return { rows, dim, values };
}

/** Cross-entropy of the logits against `labels`, summed over the chunk, as a function of the pixels. */
function lossOfPixels(net: Network, norm: Normalization, labels: tf.Tensor1D, classes: number) {
  return (pixels: tf.Tensor) => {
    const outputs = net.model.apply(normalized(pixels, norm), { training: false }) as tf.Tensor[];
    const logits = outputs.at(-1)!;
    const oneHot = tf.oneHot(labels, classes);
    return net.output === 'probabilities'
      ? tf.neg(tf.sum(tf.mul(oneHot, tf.log(tf.add(logits, 1e-12)))))
      : tf.losses.softmaxCrossEntropy(oneHot, logits, undefined, undefined, tf.Reduction.SUM);
  };
}

/** sign(d cross-entropy / d pixels) of each image, [count, pixels]. */
export function gradientSigns(
  net: Network,
  set: PixelSet,
  shape: [number, number, number],
  norm: Normalization,
  chunk = 500,
): Float32Array {
  const classes = net.model.outputs.at(-1)!.shape.at(-1)!;
  const size = shape[0] * shape[1] * shape[2];
  const out = new Float32Array(set.count * size);
  for (let start = 0; start < set.count; start += chunk) {
    const end = Math.min(set.count, start + chunk);
    const signs = tf.tidy(() => {
      const labels = tf.tensor1d(set.labels.subarray(start, end), 'int32');
      const grad = tf.grad(lossOfPixels(net, norm, labels, classes))(pixelChunk(set, shape, start, end));
      return tf.sign(grad);
    });
    out.set(signs.dataSync(), start * size);
    signs.dispose();
  }
  return out;
}

export interface PgdOptions {
  /** Gradient steps (default 10). */
  steps?: number;
  /** Each step's size (default 2.5 eps / steps, as Madry et al. 2018). */
  stepSize?: number;
  /** Seed of the random start, uniform in the eps-ball (default 1234). */
  seed?: number;
}

/**
 * Projected gradient descent in the L-infinity ball (Madry et al. 2018): a seeded random start uniform in
 * [-eps, eps] around each image, then `steps` steps of stepSize sign(d cross-entropy / dx) against the
 * true labels, each followed by projection onto the ball and onto [0, 1].
 */
export function pgd(
  net: Network,
  set: PixelSet,
  shape: [number, number, number],
  norm: Normalization,
  eps: number,
  options: PgdOptions = {},
): PixelSet {
  if (!(eps >= 0 && eps <= 1)) throw new InputError('eps', `must be in [0, 1], got ${eps}`);
  const steps = options.steps ?? 10;
  if (!Number.isInteger(steps) || steps < 1)
    throw new InputError('steps', `must be a whole number from 1, got ${steps}`);
  const stepSize = options.stepSize ?? (2.5 * eps) / steps;
  if (set.labels.some((y) => y < 0)) throw new InputError('pgd', 'needs the true label of every image');
  const random = seededRandom(options.seed ?? 1234);
  const x0 = set.pixels;
  const x = new Float32Array(x0.length);
  const project = (i: number, v: number) => Math.min(1, Math.max(0, Math.min(x0[i]! + eps, Math.max(x0[i]! - eps, v))));
  for (let i = 0; i < x.length; i++) x[i] = project(i, x0[i]! + eps * (2 * random() - 1));
  for (let step = 0; step < steps; step++) {
    const signs = gradientSigns(net, { pixels: x, count: set.count, labels: set.labels }, shape, norm);
    for (let i = 0; i < x.length; i++) x[i] = project(i, x[i]! + stepSize * signs[i]!);
  }
  return { pixels: x, count: set.count, labels: set.labels.slice() };
}

/**
 * The fast gradient sign method: x + eps sign(d cross-entropy / dx) against the true labels, clipped to
 * [0, 1], so no pixel moves by more than eps.
 */
export function fgsm(
  net: Network,
  set: PixelSet,
  shape: [number, number, number],
  norm: Normalization,
  eps: number,
): PixelSet {
  if (!(eps >= 0 && eps <= 1)) throw new InputError('eps', `must be in [0, 1], got ${eps}`);
  if (set.labels.some((y) => y < 0)) throw new InputError('fgsm', 'needs the true label of every image');
  const signs = gradientSigns(net, set, shape, norm);
  const pixels = new Float32Array(set.pixels.length);
  for (let i = 0; i < pixels.length; i++) pixels[i] = Math.min(1, Math.max(0, set.pixels[i]! + eps * signs[i]!));
  return { pixels, count: set.count, labels: set.labels.slice() };
}
