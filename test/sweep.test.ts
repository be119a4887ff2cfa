/**
 * The loss at many temperatures without its gradient (src/loss/sweep.ts): the composed form against the
 * float64 oracle and against snnl(), in blocks or not; its slope against finite differences of the oracle;
 * the native kernel (loss, slope and curvature) against the oracle and the composed form, partners that
 * underflow included; the default block size; the optimal temperature on native against cpu; no leaks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { beforeAll, describe, expect, it } from 'vitest';
import { snnl, snnlAtTemperatures, optimalTemperature } from '../src/index.js';
import { loadAddon } from '../src/engine/native/addon.js';
import { makeBatch } from '../src/loss/batch.js';
import { defaultBlockSize, resolveOptions } from '../src/loss/options.js';
import { PRESETS, getPreset } from '../src/loss/presets.js';
import { makeSweep, sweepKernelAvailable, type SweepPoint } from '../src/loss/sweep.js';
import { inputErrorMessage, needs, onBackend } from './helpers.js';
import { normalMatrix, oracleSnnl, relativeError, seeded, type Matrix } from './oracle.js';

const PAIRS = PRESETS.flatMap((preset) => getPreset(preset).distances.map((distance) => ({ preset, distance })));

/** Clustered rows (the minimum over T lies inside the range), a class of one, and a duplicate row. */
function data(seed: number, b = 60, d = 6): { x: Matrix; y: number[] } {
  const random = seeded(seed);
  const y = Array.from({ length: b }, (_, i) => (i === 0 ? 7 : i % 3));
  const x = normalMatrix(b, d, random).map((row, i) => row.map((v, k) => v + (k === y[i]! % d ? 1.5 : 0)));
  x[2] = [...x[5]!];
  y[2] = y[5]!;
  return { x, y };
}

const TEMPERATURES = [0.05, 0.4, 3, 40];

function points(x: Matrix, y: number[], temperatures: number[], options: object): SweepPoint[] {
  const batch = makeBatch(tf.tensor2d(x), y, { ...options, temperature: 1 });
  const sweep = makeSweep(batch);
  try {
    return sweep.points(temperatures);
  } finally {
    sweep.dispose();
    batch.x.dispose();
  }
}

/** dLoss/dlog T of the float64 oracle, by central differences. */
function oracleSlope(x: Matrix, y: number[], t: number, distance: never, preset: never): number {
  const h = 1e-4;
  const at = (u: number) => oracleSnnl(x, y, Math.exp(u), distance, preset).loss;
  return (at(Math.log(t) + h) - at(Math.log(t) - h)) / (2 * h);
}

describe('the default block size', () => {
  it('is the whole batch while b x b fits 64M entries, then keeps a block at 64M entries (16M on wasm)', async () => {
    expect(defaultBlockSize(1, 1 << 26)).toBe(1);
    expect(defaultBlockSize(8192, 1 << 26)).toBe(8192);
    expect(defaultBlockSize(16384, 1 << 26)).toBe(4096);
    expect(defaultBlockSize(65536, 1 << 26)).toBe(1024);
    expect(defaultBlockSize(1 << 27, 1 << 26)).toBe(1);
    await onBackend('cpu');
    expect(resolveOptions({}, 65536).blockSize).toBe(1024);
    expect(resolveOptions({ blockSize: 100 }, 65536).blockSize).toBe(100);
    await onBackend('wasm');
    expect(resolveOptions({}, 4096).blockSize).toBe(4096);
    expect(resolveOptions({}, 65536).blockSize).toBe(256);
  });
});

describe('snnlAtTemperatures, composed from tfjs ops (cpu)', () => {
  beforeAll(() => onBackend('cpu'));

  it.each(PAIRS)('$preset / $distance: the float64 oracle at every temperature, in blocks or not', (p) => {
    const { x, y } = data(3);
    for (const blockSize of [undefined, 7]) {
      const got = snnlAtTemperatures(x, y, TEMPERATURES, { ...p, blockSize });
      TEMPERATURES.forEach((t, k) => {
        const want = oracleSnnl(x, y, t, p.distance, p.preset).loss;
        expect(relativeError(got.losses[k]!, want), `T=${t} block ${blockSize}`).toBeLessThan(2e-5);
      });
      expect(got.rowsWithoutPartner).toBe(1);
      expect(got.rowsCounted).toBe(p.preset === 'stable' ? 59 : 60);
    }
  });

  it('gives what snnl() gives, and leaks no tensor', () => {
    const { x, y } = data(4);
    const before = tf.memory().numTensors;
    const got = snnlAtTemperatures(x, y, [0.5, 2], { distance: 'cosine' });
    expect(tf.memory().numTensors).toBe(before);
    [0.5, 2].forEach((temperature, k) => {
      const loss = snnl(x, y, { distance: 'cosine', temperature });
      expect(got.losses[k]).toBeCloseTo(loss.dataSync()[0]!, 6);
      loss.dispose();
    });
  });

  it.each(PAIRS)('$preset / $distance: dLoss/dlog T matches finite differences of the oracle', (p) => {
    const { x, y } = data(5);
    const got = points(x, y, TEMPERATURES, p);
    TEMPERATURES.forEach((t, k) => {
      const want = oracleSlope(x, y, t, p.distance as never, p.preset as never);
      expect(Math.abs(got[k]!.slope - want), `T=${t}`).toBeLessThan(2e-4 * Math.max(1, Math.abs(want)));
      expect(got[k]!.curvature).toBeUndefined();
    });
  });

  it('rejects a temperature that is not a number above 0, naming it', () => {
    const { x, y } = data(6);
    expect(inputErrorMessage(() => snnlAtTemperatures(x, y, [1, -2]))).toMatch(/temperatures\[1\].*above 0/);
    expect(inputErrorMessage(() => snnlAtTemperatures(x, y, [NaN]))).toMatch(/temperatures\[0\]/);
  });
});

const built = 'addon' in loadAddon();
const test = needs(built, 'the native addon is not built (sudo apt-get install libtorch-dev; npm run build:native)');

describe('the native SnnlSweep kernel', () => {
  test('is registered, so sweeps and the search use it', async () => {
    await onBackend('native');
    expect(sweepKernelAvailable()).toBe(true);
  });

  for (const p of PAIRS) {
    test(`${p.preset} / ${p.distance}: loss and slope as the oracle, curvature as the slope's differences`, async () => {
      await onBackend('native');
      const { x, y } = data(7);
      // Rows per block 13 (blocks of unequal size) and the kernel's own choice give the same sums.
      for (const blockSize of [undefined, 13]) {
        const got = points(x, y, TEMPERATURES, { ...p, blockSize });
        TEMPERATURES.forEach((t, k) => {
          const loss = oracleSnnl(x, y, t, p.distance, p.preset).loss;
          const slope = oracleSlope(x, y, t, p.distance as never, p.preset as never);
          expect(relativeError(got[k]!.loss, loss), `loss T=${t}`).toBeLessThan(2e-5);
          expect(Math.abs(got[k]!.slope - slope), `slope T=${t}`).toBeLessThan(2e-4 * Math.max(1, Math.abs(slope)));
        });
      }
      const h = 1e-3;
      for (const t of [0.4, 3]) {
        const [below, at, above] = points(x, y, [t * Math.exp(-h), t, t * Math.exp(h)], p);
        const want = (above!.slope - below!.slope) / (2 * h);
        expect(Math.abs(at!.curvature! - want), `curvature T=${t}`).toBeLessThan(1e-2 * Math.max(1, Math.abs(want)));
      }
    });
  }

  test('where every partner underflows against the nearest neighbour, shifts the partners by their own', async () => {
    await onBackend('native');
    // Two far groups per class: at T = 0.01 every partner of row 0 is e^-400 below its nearest neighbour.
    const x = [[0], [0.1], [4], [4.1], [0.05], [4.05]];
    const y = [0, 1, 0, 1, 1, 0];
    const got = points(x, y, [0.01, 1], { distance: 'euclidean' });
    [0.01, 1].forEach((t, k) => {
      const want = oracleSnnl(x, y, t, 'euclidean', 'stable').loss;
      expect(Number.isFinite(got[k]!.loss)).toBe(true);
      expect(relativeError(got[k]!.loss, want), `T=${t}`).toBeLessThan(1e-5);
    });
  });

  test('agrees with the composed form on a larger batch, and leaks no tensor', async () => {
    const random = seeded(8);
    const b = 700;
    const y = Array.from({ length: b }, (_, i) => i % 10);
    const x = normalMatrix(b, 32, random).map((row, i) => row.map((v, k) => v + (k === y[i] ? 2 : 0)));
    await onBackend('cpu');
    const want = snnlAtTemperatures(x, y, [1, 10, 100]).losses;
    await onBackend('native');
    const before = tf.memory().numTensors;
    const got = snnlAtTemperatures(x, y, [1, 10, 100]).losses;
    expect(tf.memory().numTensors).toBe(before);
    got.forEach((v, k) => expect(relativeError(v, want[k]!)).toBeLessThan(1e-5));
  });

  test('finds the optimal temperature cpu finds', async () => {
    const { x, y } = data(9, 120, 8);
    for (const p of PAIRS) {
      await onBackend('cpu');
      const want = optimalTemperature(x, y, p);
      await onBackend('native');
      const before = tf.memory().numTensors;
      const got = optimalTemperature(x, y, p);
      expect(tf.memory().numTensors).toBe(before);
      expect(relativeError(got.temperature, want.temperature), `${p.preset} ${p.distance}`).toBeLessThan(1e-3);
      expect(relativeError(got.loss, want.loss)).toBeLessThan(1e-5);
      expect(got.atBoundary).toBe(want.atBoundary);
    }
  });
});
