/**
 * The GAN study's probe (experiments/gan.ts): held-out real test images (label 0) against images generated
 * from one fixed code (label 1), measured in the pixels, each hidden layer of the discriminator and of a
 * trained classifier, at the optimal temperature and at fixed ones.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset, ImageSplit } from '../data/datasets.js';
import { pixelsOf } from '../data/outliers.js';
import type { DistanceName } from '../loss/distance.js';
import { snnlAtTemperatures } from '../loss/sweep.js';
import { optimalTemperature, snnlCeiling } from '../loss/temperature.js';
import type { Gan } from '../models/gan.js';
import type { Network } from '../models/models.js';
import { permutation, seededRandom } from '../random.js';
import { frechetDistance } from '../analysis/frechet.js';

/**
 * How good the generated images look to the trained classifier: the Fréchet distance between the real and
 * the generated probe images in its last hidden layer (as FID does in Inception's), and its mean
 * confidence (largest softmax probability) on the generated ones.
 */
export interface GanQuality {
  layer: string;
  frechet: number;
  confidence: number;
}

/** One measurement: the discriminator's mean scores, the ceiling, each representation's SNNL, the quality. */
export interface ProbeMeasurement {
  realScore: number;
  fakeScore: number;
  ceiling: number;
  representations: Record<string, RepresentationRecord>;
  quality: GanQuality | null;
}

/** What the probe needs of the study's settings (a GanConfig has them). */
export interface GanProbeSettings {
  probeSize: number;
  codeSize: number;
  seed: number;
  distance: DistanceName;
  temperatures: number[];
}

export interface RepresentationRecord {
  optimalTemperature: number;
  optimalLoss: number;
  /** SNNL at each fixed temperature, keyed by the temperature as written. */
  fixed: Record<string, number>;
}

const probeCodeSeed = (seed: number) => seed * 7 + 11;

/** Pixels in [0, 1] of the images at `indices` of a split, as an NHWC tensor. */
export function imagesOf(split: ImageSplit, shape: [number, number, number], indices: ArrayLike<number>): tf.Tensor4D {
  return tf.tensor4d(pixelsOf(split, shape, indices).pixels, [indices.length, ...shape]);
}

/** The probe's held-out real images: a seeded choice of the test split. */
export function probeIndices(dataset: Dataset, size: number, seed: number): Int32Array {
  return permutation(dataset.test.count, seededRandom(seed * 31 + 5)).slice(0, size);
}

export interface Classifier {
  net: Network;
  mean: number;
  std: number;
}

/** The probe of a study: real images, a fixed code, and the representations it is measured in. */
export class GanProbe {
  readonly real: tf.Tensor4D;
  readonly code: tf.Tensor2D;
  readonly labels: Int32Array;

  constructor(
    dataset: Dataset,
    private readonly config: GanProbeSettings,
    private readonly gan: Gan,
    private readonly classifier?: Classifier,
  ) {
    const n = config.probeSize;
    this.real = imagesOf(dataset.test, dataset.imageShape, probeIndices(dataset, n, config.seed));
    this.code = tf.randomNormal([n, config.codeSize], 0, 1, 'float32', probeCodeSeed(config.seed)) as tf.Tensor2D;
    this.labels = Int32Array.from({ length: 2 * n }, (_, k) => (k < n ? 0 : 1));
  }

  /** The probe's images now: real ones first, then generated ones. */
  images(): tf.Tensor4D {
    return tf.tidy(() => tf.concat([this.real, this.gan.generator.predict(this.code) as tf.Tensor4D], 0));
  }

  /** Each representation of the probe's images (flattened rows), by name; the caller disposes them. */
  representations(images: tf.Tensor4D): {
    named: Map<string, tf.Tensor2D>;
    scores: tf.Tensor;
    confidence?: tf.Tensor1D;
  } {
    const rows = images.shape[0];
    const named = new Map<string, tf.Tensor2D>();
    named.set('pixels', tf.reshape(images, [rows, -1]));
    const [d1, d2, logit] = this.gan.discriminator.predict(images, { batchSize: 250 }) as tf.Tensor[];
    this.gan.discriminatorLayers.forEach((name, k) =>
      named.set(`discriminator/${name}`, tf.reshape([d1, d2][k]!, [rows, -1])),
    );
    tf.dispose([d1, d2]);
    const scores = tf.tidy(() => tf.sigmoid(tf.reshape(logit!, [-1])));
    logit!.dispose();
    if (this.classifier) {
      const { net, mean, std } = this.classifier;
      const x = tf.tidy(() => tf.div(tf.sub(images, mean), std));
      const outputs = net.model.predict(x, { batchSize: 250 }) as tf.Tensor[];
      x.dispose();
      net.hiddenLayers.forEach((name, k) => named.set(`classifier/${name}`, tf.reshape(outputs[k]!, [rows, -1])));
      const last = outputs.at(-1)!;
      const confidence = tf.tidy(() =>
        tf.max(net.output === 'probabilities' ? last : tf.softmax(last), 1),
      ) as tf.Tensor1D;
      tf.dispose(outputs);
      return { named, scores, confidence };
    }
    return { named, scores };
  }

  /** One measurement of every representation. */
  measure(): ProbeMeasurement {
    const images = this.images();
    const { named, scores, confidence } = this.representations(images);
    images.dispose();
    const n = this.config.probeSize;
    let quality: GanQuality | null = null;
    if (this.classifier && confidence) {
      const layer = this.classifier.net.hiddenLayers.at(-1)!;
      const h = named.get(`classifier/${layer}`)!;
      const dim = h.shape[1];
      const values = h.dataSync();
      const c = confidence.dataSync();
      let mean = 0;
      for (let k = n; k < 2 * n; k++) mean += c[k]! / n;
      quality = {
        layer,
        frechet: frechetDistance(values.subarray(0, n * dim), n, values.subarray(n * dim, 2 * n * dim), n, dim),
        confidence: mean,
      };
    }
    confidence?.dispose();
    const s = scores.dataSync();
    scores.dispose();
    const representations: Record<string, RepresentationRecord> = {};
    const options = { distance: this.config.distance, preset: 'stable' as const, checkFinite: false };
    try {
      for (const [name, h] of named) {
        const best = optimalTemperature(h, this.labels, options);
        const { losses } = snnlAtTemperatures(h, this.labels, this.config.temperatures, options);
        const fixed = Object.fromEntries(this.config.temperatures.map((t, k) => [String(t), losses[k]!]));
        representations[name] = { optimalTemperature: best.temperature, optimalLoss: best.loss, fixed };
      }
    } finally {
      tf.dispose([...named.values()]);
    }
    let real = 0;
    let fake = 0;
    for (let k = 0; k < n; k++) {
      real += s[k]! / n;
      fake += s[n + k]! / n;
    }
    return { realScore: real, fakeScore: fake, ceiling: snnlCeiling(this.labels), representations, quality };
  }

  dispose(): void {
    tf.dispose([this.real, this.code]);
  }
}
