/**
 * What `snnl dknn` builds on its detectors: bootstrap AUROC replicates (against auroc() on the resample
 * written out), the two-level paired intervals of dknn-summary, the per-set separation of every detector,
 * and the PGD attack (inside its ball, stronger than clean inputs).
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { auroc, bootstrapAurocs } from '../src/analysis/metrics.js';
import { fgsm, pgd } from '../src/analysis/probe.js';
import { fitDetectors, separation, detectorScores } from '../src/experiments/dknn-detectors.js';
import { pairedDifferences, pairedInterval } from '../src/experiments/dknn-paired.js';
import type { DknnStudy } from '../src/experiments/dknn.js';
import { buildNetwork } from '../src/models/models.js';
import { seeded } from './oracle.js';
import { inputErrorMessage as message, onBackend } from './helpers.js';

beforeAll(() => onBackend('cpu'));

describe('bootstrap AUROC replicates', () => {
  it('each replicate is auroc() of the resample its seed draws (n positives, then m negatives)', () => {
    const r = seeded(5);
    const pos = Array.from({ length: 40 }, () => Math.round(r() * 20) / 10 + 0.5); // ties on purpose
    const neg = Array.from({ length: 25 }, () => Math.round(r() * 20) / 10);
    const flip = (v: number) => -v;
    const [reps, flipped] = bootstrapAurocs([pos, pos.map(flip)], [neg, neg.map(flip)], 30, 99);
    const draw = seeded(99);
    for (let k = 0; k < 30; k++) {
      const p = Array.from({ length: pos.length }, () => pos[Math.floor(draw() * pos.length)]!);
      const n = Array.from({ length: neg.length }, () => neg[Math.floor(draw() * neg.length)]!);
      expect(reps![k]).toBeCloseTo(auroc(p, n), 12);
      // The second pair on the same resample.
      expect(flipped![k]).toBeCloseTo(auroc(p.map(flip), n.map(flip)), 12);
    }
  });

  it('the same seed and sizes give the same resamples (pairs two networks), and pairs must match in size', () => {
    const a = bootstrapAurocs([[1, 2, 3]], [[0, 2.5]], 10, 7)[0]!;
    const b = bootstrapAurocs([[1, 2, 3]], [[0, 2.5]], 10, 7)[0]!;
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(() => bootstrapAurocs([[1, 2], [1]], [[0], [0]], 3, 1)).toThrow(/same sizes/);
  });
});

describe('paired intervals over seeds and examples', () => {
  const side = (auroc: number, replicates: number[]) => ({ auroc, replicates });

  it('a constant shift gives that shift with a zero-width interval; identical sides give 0', () => {
    const reps = [0.7, 0.75, 0.8, 0.72];
    const shifted = reps.map((v) => v + 0.1);
    const pairs = [1, 2, 3].map((s) => ({ a: side(0.85 + s / 100, shifted), b: side(0.75 + s / 100, reps) }));
    const got = pairedInterval(pairs);
    expect(got.mean).toBeCloseTo(0.1, 12);
    expect(got.lower).toBeCloseTo(0.1, 12);
    expect(got.upper).toBeCloseTo(0.1, 12);
    const same = pairedInterval([1, 2].map(() => ({ a: side(0.8, reps), b: side(0.8, reps) })));
    expect([same.mean, same.lower, same.upper]).toEqual([0, 0, 0]);
  });

  it('the interval widens with the seeds spread and covers the mean', () => {
    const r = seeded(3);
    const noisy = (centre: number) => Array.from({ length: 200 }, () => centre + 0.02 * (r() - 0.5));
    const pairs = [0.02, 0.05, 0.08].map((d) => ({ a: side(0.8 + d, noisy(0.8 + d)), b: side(0.8, noisy(0.8)) }));
    const got = pairedInterval(pairs);
    expect(got.mean).toBeCloseTo(0.05, 12);
    expect(got.lower).toBeLessThan(got.mean);
    expect(got.upper).toBeGreaterThan(got.mean);
    expect(got.lower).toBeGreaterThan(0.015);
    expect(got.upper).toBeLessThan(0.085);
  });

  it('pairedDifferences pairs entangled with the baseline of the same seed and gives verdicts', () => {
    const study = (factor: number, seed: number, value: number): DknnStudy =>
      ({
        dataset: 'mnist',
        factor,
        seed,
        sets: [
          { name: 'clean', auroc: null },
          {
            name: 'noise',
            auroc: { credibility: value, softmax: 0.5 },
            aurocReplicates: { credibility: [value - 0.01, value, value + 0.01], softmax: [0.5, 0.5, 0.5] },
          },
        ],
      }) as unknown as DknnStudy;
    const rows = pairedDifferences([
      study(0, 1, 0.9),
      study(0, 2, 0.91),
      study(-10, 1, 0.7),
      study(-10, 2, 0.72),
      study(-10, 3, 0.5), // no baseline with seed 3: left out of the pairs
    ]);
    const cred = rows.find((r) => r.comparison === 'entangled - baseline' && r.detector === 'credibility')!;
    expect(cred.seeds).toEqual([1, 2]);
    expect(cred.mean).toBeCloseTo(-0.195, 12);
    expect(cred.verdict).toBe('worse');
    const soft = rows.find((r) => r.comparison === 'entangled - baseline' && r.detector === 'softmax')!;
    expect(soft.verdict).toBe('not distinguishable');
    const within = rows.find((r) => r.comparison === 'credibility - softmax' && r.config === 'baseline')!;
    expect(within.verdict).toBe('better');
  });
});

describe('every detector on one set', () => {
  it('separation: AUROC and FPR95 per detector, replicates for each, null detectors left out', () => {
    const r = seeded(11);
    const dim = 4;
    const classes = 2;
    const rows = 60;
    const train = Float32Array.from({ length: rows * dim }, (_, i) => (Math.floor(i / dim) % 2) * 3 + r());
    const labels = Int32Array.from({ length: rows }, (_, i) => i % 2);
    const fitted = fitDetectors('fc', [{ rows, dim, values: train }], labels, classes, false, 5);
    expect(fitted.info.leftOut.energy).toMatch(/no logits/);
    // Far: the same points turned away (negated) and moved off: far for both Mahalanobis and the unit-length k-NN.
    const query = (sign: number, n: number) => ({
      rows: n,
      dim,
      values: Float32Array.from({ length: n * dim }, (_, i) => sign * ((Math.floor(i / dim) % 2) * 3 + r() + 1)),
    });
    const clean = query(1, 30);
    const far = query(-1, 20);
    const cred = Array.from({ length: 50 }, (_, i) => (i < 30 ? 0.9 : 0.1));
    const soft = Array.from({ length: 50 }, () => 0.5);
    const cleanScores = detectorScores(fitted, clean, null, classes, cred.slice(0, 30), soft.slice(0, 30));
    const farScores = detectorScores(fitted, far, null, classes, cred.slice(30), soft.slice(30));
    expect(cleanScores.energy).toBeNull();
    const sep = separation(cleanScores, farScores, 'far', 1, 20);
    expect(sep.auroc).toEqual({ credibility: 1, softmax: 0.5, mahalanobis: 1, knn: 1 });
    expect(sep.fpr95.credibility).toBe(0);
    expect(sep.fpr95.softmax).toBe(1);
    expect(sep.aurocReplicates.knn).toHaveLength(20);
    expect(sep.aurocReplicates.energy).toBeUndefined();
    expect(message(() => fitDetectors('fc', [{ rows, dim, values: train }], labels, classes, true, 61))).toBe(
      'knnK: must be a whole number from 1 to 60 (the training rows), got 61',
    );
  });
});

describe('PGD', () => {
  it('stays in the eps-ball and [0, 1], is seeded, and raises the loss at least as much as FGSM', () => {
    const net = buildNetwork('mlp', [4, 4, 1], 3, 1, { widths: [8] });
    const r = seeded(2);
    const set = {
      pixels: Float32Array.from({ length: 16 * 12 }, () => r()),
      count: 12,
      labels: Int32Array.from({ length: 12 }, (_, i) => i % 3),
    };
    const norm = { mean: 0.5, std: 0.25 };
    const eps = 0.1;
    const before = tf.memory().numTensors;
    const attacked = pgd(net, set, [4, 4, 1], norm, eps, { steps: 5, seed: 3 });
    expect(tf.memory().numTensors).toBe(before);
    for (let i = 0; i < set.pixels.length; i++) {
      expect(Math.abs(attacked.pixels[i]! - set.pixels[i]!)).toBeLessThanOrEqual(eps + 1e-6);
      expect(attacked.pixels[i]).toBeGreaterThanOrEqual(0);
      expect(attacked.pixels[i]).toBeLessThanOrEqual(1);
    }
    expect(Array.from(pgd(net, set, [4, 4, 1], norm, eps, { steps: 5, seed: 3 }).pixels)).toEqual(
      Array.from(attacked.pixels),
    );
    const loss = (pixels: Float32Array) =>
      tf.tidy(() => {
        const x = tf.div(tf.sub(tf.tensor4d(pixels, [12, 4, 4, 1]), 0.5), 0.25);
        const logits = (net.model.predict(x) as tf.Tensor[]).at(-1)!;
        return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(set.labels, 'int32'), 3), logits).dataSync()[0]!;
      });
    const clean = loss(set.pixels);
    expect(loss(attacked.pixels)).toBeGreaterThan(clean);
    expect(loss(attacked.pixels)).toBeGreaterThanOrEqual(loss(fgsm(net, set, [4, 4, 1], norm, eps).pixels) - 1e-3);
    expect(message(() => pgd(net, set, [4, 4, 1], norm, eps, { steps: 0 }))).toBe(
      'steps: must be a whole number from 1, got 0',
    );
    net.model.dispose();
  });
});
