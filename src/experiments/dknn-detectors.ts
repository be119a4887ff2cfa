/**
 * The detectors `snnl dknn` sets beside Deep k-NN credibility, on the same network and query sets: the
 * maximum softmax probability, the energy score of the logits, the Mahalanobis score and the k-th
 * nearest-neighbour distance of the penultimate layer (analysis/detectors.ts), each higher for inputs
 * that look in-distribution. Per outlier set: AUROC and FPR at 95% TPR of every detector, and bootstrap
 * replicates of the AUROCs for intervals over examples and seeds (dknn-summary).
 */
import { auroc, bootstrapAurocs, fprAtTpr } from '../analysis/metrics.js';
import {
  energyScore,
  fitMahalanobis,
  knnDistanceScore,
  mahalanobisScore,
  type MahalanobisModel,
} from '../analysis/detectors.js';
import { joinChunks } from '../analysis/probe.js';
import type { FeatureChunks, FeatureMatrix } from '../analysis/knn.js';
import { InputError } from '../errors.js';

export const DETECTORS = ['credibility', 'softmax', 'energy', 'mahalanobis', 'knn'] as const;
export type DetectorName = (typeof DETECTORS)[number];

export const DETECTOR_LABELS: Record<DetectorName, string> = {
  credibility: 'DkNN credibility',
  softmax: 'max softmax',
  energy: 'energy',
  mahalanobis: 'Mahalanobis',
  knn: 'k-th NN distance',
};

/** Features wider than this get no Mahalanobis score (its covariance is dim x dim, its fit O(n dim^2)). */
export const MAHALANOBIS_MAX_DIM = 2048;

export const DETECTOR_DEFAULTS = {
  /** k of the k-th nearest-neighbour distance (Sun et al. 2022 use 50 on CIFAR-10's full training set). */
  knnK: 50,
  /** Bootstrap replicates of each AUROC stored in dknn.json. */
  replicates: 200,
};

/** What the study records about its detectors: where they look, and why any was left out. */
export interface DetectorInfo {
  penultimate: string;
  dim: number;
  knnK: number;
  /** Detector name -> why it has no scores (a network ending in softmax has no logits, ...). */
  leftOut: Partial<Record<DetectorName, string>>;
}

export interface FittedDetectors {
  info: DetectorInfo;
  mahalanobis: MahalanobisModel | null;
  train: FeatureChunks;
}

/** Fits the detectors that need training features: Mahalanobis (class means, shared covariance) and the k-NN bank. */
export function fitDetectors(
  penultimate: string,
  train: FeatureChunks,
  labels: ArrayLike<number>,
  classes: number,
  hasLogits: boolean,
  knnK = DETECTOR_DEFAULTS.knnK,
): FittedDetectors {
  const rows = train.reduce((n, c) => n + c.rows, 0);
  if (!Number.isInteger(knnK) || knnK < 1 || knnK > rows)
    throw new InputError('knnK', `must be a whole number from 1 to ${rows} (the training rows), got ${knnK}`);
  const dim = train[0]?.dim ?? 0;
  const leftOut: DetectorInfo['leftOut'] = {};
  if (!hasLogits) leftOut.energy = 'the network ends in softmax: no logits';
  let mahalanobis: MahalanobisModel | null = null;
  if (dim > MAHALANOBIS_MAX_DIM)
    leftOut.mahalanobis = `${penultimate} has ${dim} features (above ${MAHALANOBIS_MAX_DIM})`;
  else {
    const joined = joinChunks(train);
    mahalanobis = fitMahalanobis(joined.values.subarray(0, joined.rows * dim), dim, labels, classes);
  }
  return { info: { penultimate, dim, knnK, leftOut }, mahalanobis, train };
}

/** Every detector's score of each query row (null where left out). */
export function detectorScores(
  fitted: FittedDetectors,
  penultimate: FeatureMatrix,
  logits: Float32Array | null,
  classes: number,
  credibility: ArrayLike<number>,
  softmax: ArrayLike<number>,
): Record<DetectorName, ArrayLike<number> | null> {
  return {
    credibility,
    softmax,
    energy: logits ? energyScore(logits, classes) : null,
    mahalanobis: fitted.mahalanobis
      ? mahalanobisScore(fitted.mahalanobis, penultimate.values.subarray(0, penultimate.rows * penultimate.dim))
      : null,
    knn: knnDistanceScore(fitted.train, penultimate, fitted.info.knnK),
  };
}

export type DetectorNumbers = Partial<Record<DetectorName, number>>;

export interface Separation {
  auroc: DetectorNumbers;
  fpr95: DetectorNumbers;
  /** Bootstrap replicates of each AUROC (rounded to 4 places), paired across detectors and networks. */
  aurocReplicates: Partial<Record<DetectorName, number[]>>;
}

/** A string's 32-bit FNV-1a hash: a set's bootstrap seed, the same in every study. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** How well each detector tells the clean rows (positive) from one outlier set's rows. */
export function separation(
  clean: Record<DetectorName, ArrayLike<number> | null>,
  outliers: Record<DetectorName, ArrayLike<number> | null>,
  setName: string,
  seed: number,
  replicates = DETECTOR_DEFAULTS.replicates,
): Separation {
  const present = DETECTORS.filter((d) => clean[d] !== null && outliers[d] !== null);
  const result: Separation = { auroc: {}, fpr95: {}, aurocReplicates: {} };
  for (const d of present) {
    result.auroc[d] = auroc(clean[d]!, outliers[d]!);
    result.fpr95[d] = fprAtTpr(clean[d]!, outliers[d]!);
  }
  if (replicates > 0) {
    const reps = bootstrapAurocs(
      present.map((d) => clean[d]!),
      present.map((d) => outliers[d]!),
      replicates,
      (seed ^ hash(setName)) >>> 0,
    );
    present.forEach((d, k) => {
      result.aurocReplicates[d] = Array.from(reps[k]!, (v) => Math.round(v * 1e4) / 1e4);
    });
  }
  return result;
}

/** Slices of every detector's scores (rows start..end). */
export function sliceScores(
  scores: Record<DetectorName, ArrayLike<number> | null>,
  start: number,
  end: number,
): Record<DetectorName, ArrayLike<number> | null> {
  const out = {} as Record<DetectorName, ArrayLike<number> | null>;
  for (const d of DETECTORS) {
    const s = scores[d];
    out[d] = s === null ? null : Array.prototype.slice.call(s, start, end);
  }
  return out;
}
