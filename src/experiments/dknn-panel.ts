/**
 * Two parts of the Deep k-NN study (experiments/dknn.ts): the poster's panel (a test image the last FGSM
 * strength fools, with its nearest training images per layer) and the paper code's adversarial-gradient
 * study in numbers.
 */
import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/datasets.js';
import { pixelsOf, type PixelSet } from '../data/outliers.js';
import { optimalTemperature } from '../loss/temperature.js';
import type { normalizationFor } from '../training/evaluate.js';
import { permutation, seededRandom } from '../random.js';
import type { DknnResult } from '../analysis/dknn.js';
import { knnPurity } from '../analysis/metrics.js';
import { gradientSigns } from '../analysis/probe.js';

export interface PanelExample {
  /** Test index, its label, and per layer the training indices of its nearest neighbours. */
  testIndex: number;
  label: number;
  clean: { prediction: number; credibility: number; neighbors: Record<string, number[]>; pixels: number[] };
  adversarial: { prediction: number; credibility: number; neighbors: Record<string, number[]>; pixels: number[] };
  eps: number;
}

/** A query set of the study: its name, pixels and labels, and whether its labels are the true classes. */
export interface QuerySet {
  name: string;
  description: string;
  set: PixelSet;
  /** Whether its labels are the true classes of the network's task. */
  labelled: boolean;
  outlier: boolean;
}

const PANEL_NEIGHBORS = 5;

/** The first sampled test image that the last FGSM strength fools, with its neighbours (the poster's panel). */
export function panelExample(
  result: DknnResult,
  slices: Array<{ q: QuerySet; start: number; end: number }>,
  queries: QuerySet[],
  sample: Int32Array,
  calibration: number,
  layers: string[],
  eps: number | undefined,
): PanelExample {
  const adv = slices.find((s) => s.q.name === `fgsm-${eps}`);
  const clean = slices[0]!;
  const size = queries[0]!.set.pixels.length / queries[0]!.set.count;
  let pick = 0;
  if (adv) {
    const fooled = Array.from({ length: adv.end - adv.start }, (_, i) => i).find(
      (i) => result.prediction[adv.start + i] !== adv.q.set.labels[i],
    );
    pick = fooled ?? 0;
  }
  const testRow = sample[pick]!; // index into the evaluated test images
  const k = result.neighbors[layers[0]!]!.length / result.prediction.length;
  const neighborsOf = (row: number) =>
    Object.fromEntries(
      layers.map((l) => [l, Array.from(result.neighbors[l]!.subarray(row * k, row * k + PANEL_NEIGHBORS))]),
    );
  const cleanRow = clean.start + testRow;
  const advRow = adv ? adv.start + pick : cleanRow;
  const pixelsAt = (set: PixelSet, i: number) =>
    Array.from(set.pixels.subarray(i * size, (i + 1) * size), (v) => Math.round(v * 255));
  return {
    testIndex: calibration + testRow,
    label: queries[0]!.set.labels[testRow]!,
    clean: {
      prediction: result.prediction[cleanRow]!,
      credibility: result.credibility[cleanRow]!,
      neighbors: neighborsOf(cleanRow),
      pixels: pixelsAt(queries[0]!.set, testRow),
    },
    adversarial: {
      prediction: result.prediction[advRow]!,
      credibility: result.credibility[advRow]!,
      neighbors: neighborsOf(advRow),
      pixels: adv ? pixelsAt(adv.q.set, pick) : pixelsAt(queries[0]!.set, testRow),
    },
    eps: eps ?? 0,
  };
}

/**
 * The paper code's adversarial-gradient study in numbers: sign(d CE / d input) of `count` test images
 * (after the calibration images), then how much those vectors cluster by true label: SNNL at the optimal
 * temperature (squared Euclidean, stable form; the ceiling is its T -> infinity limit) and the share of
 * each vector's 10 nearest others with its label.
 */
export function gradientStudy(
  net: Parameters<typeof gradientSigns>[0],
  dataset: Dataset,
  norm: ReturnType<typeof normalizationFor>,
  count: number,
  calibration: number,
  seed: number,
) {
  const available = dataset.test.count - calibration;
  const picked = permutation(available, seededRandom(seed + 1)).slice(0, Math.min(count, available));
  const set = pixelsOf(
    dataset.test,
    dataset.imageShape,
    Array.from(picked, (i) => i + calibration),
  );
  const signs = gradientSigns(net, set, dataset.imageShape, norm);
  const dim = signs.length / set.count;
  const x = tf.tensor2d(signs, [set.count, dim]);
  const optimal = optimalTemperature(x, set.labels, { distance: 'squared-euclidean', preset: 'stable' });
  x.dispose();
  const counts = new Map<number, number>();
  for (const y of set.labels) counts.set(y, (counts.get(y) ?? 0) + 1);
  // The T -> infinity limit over the rows SNNL counts (those whose class has another member here).
  const counted = Array.from(set.labels).filter((y) => counts.get(y)! > 1);
  let ceiling = 0;
  for (const y of counted) ceiling -= Math.log((counts.get(y)! - 1) / (set.count - 1)) / counted.length;
  const purityK = 10;
  const summary = {
    images: set.count,
    snnlOptimal: optimal.loss,
    temperature: optimal.temperature,
    ceiling,
    knnPurity: knnPurity(signs, dim, set.labels, purityK),
    k: purityK,
  };
  return { summary, signs, labels: set.labels };
}
