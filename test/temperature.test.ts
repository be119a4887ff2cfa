import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { annealedTemperature, optimalTemperature, snnl, snnlCeiling } from '../src/index.js';
import { onBackend } from './helpers.js';
import { normalMatrix, oracleSnnl, relativeError, seeded, type OracleDistance, type OraclePreset } from './oracle.js';

describe('annealed temperature', () => {
  it('follows 1 / (1 + epoch)^0.55 from epoch 0', () => {
    expect(annealedTemperature(0)).toBe(1);
    expect(annealedTemperature(1)).toBeCloseTo(0.683, 3);
    expect(annealedTemperature(9)).toBeCloseTo(0.282, 3);
    expect(annealedTemperature(19)).toBeCloseTo(0.193, 3);
  });

  it('rejects epochs that are negative or not whole', () => {
    expect(() => annealedTemperature(-1)).toThrow(/epoch: expected a whole number/);
    expect(() => annealedTemperature(1.5)).toThrow(/epoch/);
  });
});

describe('the ceiling (SNNL as T grows)', () => {
  beforeAll(() => onBackend('cpu'));

  it('is the mean of log((b - 1) / (n_y - 1)) over rows with a partner', () => {
    expect(snnlCeiling([0, 0, 1, 1])).toBeCloseTo(Math.log(3), 12);
    // A class of one has no partner and is left out; classes of 2 and 3 among 6 points.
    const want = (2 * Math.log(5 / 1) + 3 * Math.log(5 / 2)) / 5;
    expect(snnlCeiling([4, 0, 0, 1, 1, 1])).toBeCloseTo(want, 12);
    expect(snnlCeiling([0, 1, 2])).toBe(0);
  });

  it("is the float64 oracle at a very large temperature, and bounds the optimal temperature's value", () => {
    const random = seeded(31);
    const y = Array.from({ length: 30 }, (_, i) => (i < 4 ? 0 : i < 14 ? 1 : 2));
    const x = normalMatrix(30, 3, random);
    expect(oracleSnnl(x, y, 1e9, 'squared-euclidean', 'stable').loss).toBeCloseTo(snnlCeiling(y), 6);
    // Unstructured points: the loss still falls as T grows, so the search stops at the range's top end,
    // a hair above the limit (float32, and T finite); never more than that.
    const found = optimalTemperature(x, y);
    expect(found.atBoundary).toBe(true);
    expect(found.loss).toBeLessThanOrEqual(snnlCeiling(y) * (1 + 1e-3));
  });
});

/** The minimum of the float64 oracle over a dense grid of log T. */
function gridMinimum(x: number[][], y: number[], distance: OracleDistance, preset: OraclePreset) {
  let best = { temperature: NaN, loss: Infinity };
  for (let u = -8; u <= 8; u += 0.002) {
    const temperature = Math.exp(u);
    const loss = oracleSnnl(x, y, temperature, distance, preset).loss;
    if (loss < best.loss) best = { temperature, loss };
  }
  return best;
}

describe('optimal temperature', () => {
  beforeAll(() => onBackend('wasm'));

  const cases: Array<[OraclePreset, OracleDistance, number]> = [
    ['stable', 'squared-euclidean', 21],
    ['stable', 'cosine', 22],
    ['cleverhans', 'squared-euclidean', 23],
    ['pt-snnl', 'cosine', 24],
  ];
  it.each(cases)(
    '%s / %s (seed %i): within one percent of a dense grid search of the oracle',
    (preset, distance, seed) => {
      const random = seeded(seed);
      const b = 40;
      const y = Array.from({ length: b }, (_, i) => i % 3);
      // Classes shifted apart a little, so the minimum is inside the range, not at T -> infinity.
      const x = normalMatrix(b, 4, random).map((row, i) => row.map((v, k) => v + (k === y[i]! ? 1.5 : 0)));
      const expected = gridMinimum(x, y, distance, preset);
      const got = optimalTemperature(x, y, { preset, distance });
      expect(relativeError(got.temperature, expected.temperature)).toBeLessThan(0.01);
      expect(relativeError(got.loss, expected.loss)).toBeLessThan(1e-4);
      expect(got.atBoundary).toBe(false);
    },
  );

  // Regression: rows that are scaled copies of each other have cosine distances that rounding made
  // slightly negative; at the search's smallest temperatures exp(-D / T) overflowed, the first grid point
  // was NaN, and the search settled there (trained networks' ReLU layers gave 'optimal' losses near
  // -log(1e-5) at T ~ 1e-9 where T ~ 0.1 gives 0.1).
  it.each([
    ['pt-snnl', 'cosine'],
    ['stable', 'cosine'],
  ] as const)(
    '%s / %s with (near-)parallel rows: distances stay >= 0 and the search finds the minimum',
    (preset, distance) => {
      const random = seeded(29);
      const b = 48;
      const y = Array.from({ length: b }, (_, i) => i % 4);
      // Wide ReLU-like rows (rounding in u.u grows with the width), and each class made of copies of its
      // base scaled by odd factors (cosine distance 0 up to rounding), a few slightly perturbed.
      const bases = normalMatrix(4, 1024, random).map((row) => row.map((v) => Math.max(0, v)));
      const x = y.map((c, i) => {
        const scale = 0.3 + 0.7 * random();
        return bases[c]!.map((v) => v * scale + (i % 3 === 0 ? 1e-4 * random() : 0));
      });
      const got = optimalTemperature(x, y, { preset, distance });
      expect(Number.isFinite(got.loss)).toBe(true);
      for (const t of [1e-6, 1e-3, 0.01, 0.1, 1]) {
        const at = tf.tidy(() => snnl(x, y, { preset, distance, temperature: t }).dataSync()[0]!);
        expect(Number.isFinite(at)).toBe(true);
        expect(got.loss).toBeLessThanOrEqual(at + 1e-6);
      }
    },
  );

  it("takes the reference code's one gradient step on the inverse-temperature multiplier", () => {
    const x = normalMatrix(20, 3, seeded(25));
    const y = Array.from({ length: 20 }, (_, i) => i % 2);
    const t0 = 2;
    const got = optimalTemperature(x, y, { method: 'one-step', initialTemperature: t0, preset: 'cleverhans' });
    // dLoss/dt by central differences of the oracle, with T = T0 / t at t = 1.
    const h = 1e-5;
    const at = (t: number) => oracleSnnl(x, y, t0 / t, 'squared-euclidean', 'cleverhans').loss;
    const slope = (at(1 + h) - at(1 - h)) / (2 * h);
    const t = 1 - 0.1 * slope;
    expect(got.multiplier!).toBeCloseTo(t, 5);
    expect(got.temperature).toBeCloseTo(t0 / t, 5);
    expect(relativeError(got.loss, at(t))).toBeLessThan(1e-5);
    // The multiplier carries over to the next evaluation, as the reference code's variable does.
    const next = optimalTemperature(x, y, {
      method: 'one-step',
      initialTemperature: t0,
      multiplier: got.multiplier!,
      preset: 'cleverhans',
    });
    expect(next.multiplier).not.toBe(got.multiplier);
  });

  it('halves the multiplier where the reference step would pass t = 0 (a negative temperature)', () => {
    // 64 points in 50-d, 4 classes: at T0 = 4 the loss falls so steeply with T that the step overshoots.
    const x = normalMatrix(64, 50, seeded(26));
    const y = Array.from({ length: 64 }, (_, i) => i % 4);
    const t0 = 4;
    const h = 1e-6;
    const at = (t: number) => oracleSnnl(x, y, t0 / t, 'squared-euclidean', 'cleverhans').loss;
    expect(1 - 0.1 * ((at(1 + h) - at(1 - h)) / (2 * h))).toBeLessThan(0);
    const got = optimalTemperature(x, y, { method: 'one-step', initialTemperature: t0, preset: 'cleverhans' });
    expect(got.multiplier).toBe(0.5);
    expect(got.temperature).toBe(8);
    expect(relativeError(got.loss, at(0.5))).toBeLessThan(1e-5);
  });

  it('is the loss of snnl at the temperature found, and leaks no tensor', () => {
    const x = tf.randomNormal([30, 5], 0, 1, 'float32', 26);
    const y = Array.from({ length: 30 }, (_, i) => i % 3);
    const before = tf.memory().numTensors;
    const found = optimalTemperature(x, y, { blockSize: 7 });
    expect(tf.memory().numTensors).toBe(before);
    const loss = snnl(x, y, { temperature: found.temperature });
    expect(loss.dataSync()[0]).toBeCloseTo(found.loss, 5);
    tf.dispose([x, loss]);
  });

  it('rejects bad options by name', () => {
    const x = normalMatrix(4, 2, seeded(27));
    const y = [0, 0, 1, 1];
    expect(() => optimalTemperature(x, y, { method: 'best' as 'search' })).toThrow(/method: unknown value "best"/);
    expect(() => optimalTemperature(x, y, { initialTemperature: 0 })).toThrow(/initialTemperature/);
    expect(() => optimalTemperature(x, y, { multiplier: -1 })).toThrow(/multiplier/);
    expect(() => optimalTemperature(x, y, { tolerance: 0 })).toThrow(/tolerance/);
  });
});
