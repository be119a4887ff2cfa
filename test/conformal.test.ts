/**
 * Conformal p-values and prediction sets: the forms by hand, coverage at least 1 - epsilon on exchangeable
 * data (plain and Mondrian calibration) within its binomial tolerance, and smoothed p-values uniform.
 */
import { describe, expect, it } from 'vitest';
import {
  calibrate,
  conformalPValue,
  conformalPValues,
  predictionSets,
  setSummaries,
} from '../src/analysis/conformal.js';
import { seeded } from './oracle.js';
import { inputErrorMessage as message } from './helpers.js';

/**
 * Exchangeable data as Deep k-NN gives it: integer nonconformity 0..150 (75 neighbours x 2 layers), the true
 * label's lower than the others', class-dependent, with many ties.
 */
function simulate(n: number, classes: number, random: () => number) {
  const labels = Int32Array.from({ length: n }, () => Math.floor(random() * classes));
  const scores = new Float64Array(n * classes);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < classes; j++) {
      const centre = j === labels[i] ? 20 + 8 * labels[i]! : 110;
      scores[i * classes + j] = Math.max(0, Math.min(150, Math.round(centre + 30 * (random() - 0.5) * 2)));
    }
  }
  const own = Float64Array.from(labels, (y, i) => scores[i * classes + y]!);
  return { labels, scores, own };
}

describe('conformal p-values', () => {
  it('finite and smoothed forms by hand', () => {
    const sorted = Float64Array.from([1, 2, 2, 3]);
    expect(conformalPValue(sorted, 2, 'finite')).toBeCloseTo(4 / 5, 15); // 3 scores >= 2, plus itself
    expect(conformalPValue(sorted, 2, 'smoothed', 0.5)).toBeCloseTo((1 + 0.5 * 3) / 5, 15);
    expect(conformalPValue(sorted, 0, 'finite')).toBe(1);
    expect(conformalPValue(sorted, 9, 'finite')).toBeCloseTo(1 / 5, 15);
    expect(conformalPValue(sorted, 9, 'smoothed', 0.25)).toBeCloseTo(0.25 / 5, 15);
    expect(Array.from(predictionSets(Float64Array.from([0.5, 0.04, 0.2, 0.01]), 0.05))).toEqual([1, 0, 1, 0]);
  });

  const classes = 5;
  for (const mondrian of [false, true]) {
    it(`coverage >= 1 - epsilon within its binomial tolerance (${mondrian ? 'Mondrian' : 'plain'} calibration)`, () => {
      const random = seeded(mondrian ? 11 : 7);
      const nCal = 2000;
      const nTest = 5000;
      const cal = simulate(nCal, classes, random);
      const test = simulate(nTest, classes, random);
      const calibration = calibrate(cal.own, cal.labels, classes, mondrian);
      const epsilons = [0.01, 0.05, 0.1, 0.2];
      for (const form of ['finite', 'smoothed'] as const) {
        const p = conformalPValues(test.scores, classes, calibration, form, 3);
        for (const s of setSummaries(p, classes, test.labels, epsilons)) {
          // The conditional coverage varies with the calibration set and the test sample: 3 sd of both.
          const perClass = mondrian ? nCal / classes : nCal;
          const tolerance = 3 * Math.sqrt(s.epsilon * (1 - s.epsilon) * (1 / perClass + 1 / nTest));
          expect(s.coverage, `${form} eps ${s.epsilon}`).toBeGreaterThanOrEqual(1 - s.epsilon - tolerance);
          // Not trivially: the sets stay informative (well under all 5 labels).
          expect(s.meanSize).toBeLessThan(3);
          if (form === 'smoothed') expect(Math.abs(s.coverage - (1 - s.epsilon))).toBeLessThan(tolerance);
        }
        if (mondrian) {
          // Within each class too.
          for (let c = 0; c < classes; c++) {
            const rows = Array.from(test.labels.keys()).filter((i) => test.labels[i] === c);
            const pc = Float64Array.from(rows.flatMap((i) => Array.from(p.subarray(i * classes, (i + 1) * classes))));
            const [s] = setSummaries(
              pc,
              classes,
              Int32Array.from(rows, () => c),
              [0.1],
            );
            const tolerance = 3 * Math.sqrt(0.09 * (1 / (nCal / classes) + 1 / rows.length));
            expect(s!.coverage, `class ${c}`).toBeGreaterThanOrEqual(0.9 - tolerance);
          }
        }
      }
    });
  }

  it('smoothed p-values of the true label are uniform on exchangeable data (Kolmogorov-Smirnov)', () => {
    const random = seeded(5);
    const values: number[] = [];
    // Many small calibration sets: the marginal distribution over calibration and test draws is uniform.
    for (let rep = 0; rep < 200; rep++) {
      const cal = simulate(50, classes, random);
      const test = simulate(20, classes, random);
      const p = conformalPValues(test.scores, classes, calibrate(cal.own, cal.labels, classes), 'smoothed', rep);
      test.labels.forEach((y, i) => values.push(p[i * classes + y]!));
    }
    values.sort((a, b) => a - b);
    const n = values.length;
    const ks = Math.max(...values.map((v, i) => Math.max((i + 1) / n - v, v - i / n)));
    expect(ks).toBeLessThan(1.63 / Math.sqrt(n)); // the 1% critical value
    // The finite form is conservative instead: P(p <= eps) <= eps, not equal (ties of integer scores).
  });

  it('refuses calibration it cannot use, naming it', () => {
    expect(message(() => calibrate([1, 2], [0], 2))).toBe('calibration: 2 scores for 1 labels');
    expect(message(() => calibrate([], [], 2))).toBe('calibration: is empty');
    expect(message(() => calibrate([1, 2], [0, 0], 2, true))).toBe(
      'calibration: has no example of class 1; Mondrian calibration needs every class',
    );
    expect(message(() => setSummaries(Float64Array.from([0.5, 0.5]), 2, [0], [1.5]))).toBe(
      'epsilon: expected rates in (0, 1), got 1.5',
    );
  });
});
