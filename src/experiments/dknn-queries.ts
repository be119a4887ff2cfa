/**
 * The query sets of the Deep k-NN study (experiments/dknn.ts): the clean test images, then the outlier sets
 * (the other grayscale data set, rotated images, rendered letters, noise) and attacked test images (FGSM and
 * PGD at each strength), as pixels in [0, 1] with their labels.
 */
import type { Dataset, Normalization } from '../data/datasets.js';
import { loadDataset } from '../data/datasets.js';
import { pixelsOf, renderedLetters, rotated90, uniformNoise, type PixelSet } from '../data/outliers.js';
import { InputError } from '../errors.js';
import type { Network } from '../models/models.js';
import { fgsm, pgd } from '../analysis/probe.js';
import type { QuerySet } from './dknn-panel.js';

/** The integers start, start + 1, ..., end - 1. */
export function range(start: number, end: number): Int32Array {
  return Int32Array.from({ length: Math.max(0, end - start) }, (_, i) => start + i);
}

export function concatSets(sets: PixelSet[]): PixelSet {
  const pixels = new Float32Array(sets.reduce((n, s) => n + s.pixels.length, 0));
  const labels = new Int32Array(sets.reduce((n, s) => n + s.count, 0));
  let p = 0;
  let l = 0;
  for (const s of sets) {
    pixels.set(s.pixels, p);
    labels.set(s.labels, l);
    p += s.pixels.length;
    l += s.count;
  }
  return { pixels, labels, count: labels.length };
}

/** The other grayscale 28x28 data set, when installed: Fashion-MNIST for MNIST and the reverse. */
export function otherDataset(dataset: Dataset): { name: string; data: Dataset } | { skipped: string } | undefined {
  const other = dataset.name === 'mnist' ? 'fashion-mnist' : dataset.name === 'fashion-mnist' ? 'mnist' : undefined;
  if (!other) return undefined;
  try {
    return { name: other, data: loadDataset(other) };
  } catch (error) {
    return { skipped: `${other}: ${error instanceof Error ? error.message : String(error)}` };
  }
}

export interface QueryParts {
  net: Network;
  dataset: Dataset;
  shape: [number, number, number];
  norm: Normalization;
  seed: number;
  /** Attack strengths. */
  eps: number[];
  /** PGD's steps (0: no PGD rows). */
  pgdSteps: number;
  /** Images per outlier set and attack. */
  few: number;
}

/** Every query set, the clean test images first. */
export function querySets(
  parts: QueryParts,
  testSet: PixelSet,
  sampled: PixelSet,
  log: (line: string) => void,
  progress?: (label: string, done: number, total: number) => void,
): QuerySet[] {
  const { net, dataset, shape, norm, seed, eps, pgdSteps, few } = parts;
  const queries: QuerySet[] = [
    { name: 'clean', description: 'test images (not calibration)', set: testSet, labelled: true, outlier: false },
  ];
  const other = otherDataset(dataset);
  if (other && 'data' in other) {
    const set = pixelsOf(other.data.test, other.data.imageShape, range(0, Math.min(few, other.data.test.count)));
    queries.push({ name: other.name, description: `${other.name} test images`, set, labelled: false, outlier: true });
  } else if (other) log(`outlier set left out: ${other.skipped}`);
  if (shape[0] === shape[1])
    queries.push({
      name: 'rotated',
      description: 'test images turned 90 degrees',
      set: rotated90(sampled, shape),
      labelled: false,
      outlier: true,
    });
  if (shape[0] === 28 && shape[1] === 28 && shape[2] === 1) {
    try {
      const letters = renderedLetters(shape);
      queries.push({
        name: 'letters',
        description: `letters A-J in ${letters.fonts} Debian fonts (a stand-in for notMNIST)`,
        set: letters,
        labelled: false,
        outlier: true,
      });
    } catch (error) {
      if (!(error instanceof InputError)) throw error;
      log(`outlier set left out: ${error.message}`);
    }
  }
  queries.push({
    name: 'noise',
    description: 'uniform noise in [0, 1]',
    set: uniformNoise(few, shape, seed),
    labelled: false,
    outlier: true,
  });
  for (const e of eps) {
    queries.push({
      name: `fgsm-${e}`,
      description: `FGSM eps ${e} on test images (clipped to [0, 1])`,
      set: fgsm(net, sampled, shape, norm, e),
      labelled: true,
      outlier: true,
    });
  }
  if (pgdSteps > 0) {
    for (const e of eps) {
      progress?.(`PGD eps ${e}`, 0, 1);
      queries.push({
        name: `pgd-${e}`,
        description: `PGD eps ${e}, ${pgdSteps} steps of 2.5 eps / steps from a random start (L-infinity, [0, 1])`,
        set: pgd(net, sampled, shape, norm, e, { steps: pgdSteps, seed }),
        labelled: true,
        outlier: true,
      });
      progress?.(`PGD eps ${e}`, 1, 1);
    }
  }
  return queries;
}
