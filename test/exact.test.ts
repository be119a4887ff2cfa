/**
 * Exact under outliers (snnl measure): one value or one row far larger than the rest must not change every
 * row's loss. Each case against the float64 oracle of test/oracle.ts (direct differences), from the float32
 * values of the file; the exact path's own functions against the oracle too.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { encodeNpy } from '../src/io/npy.js';
import { exactDistances, exactLoss, exactOptimalTemperature, gramError } from '../src/loss/exact.js';
import { normalMatrix, oracleSnnl, relativeError, seeded, type Matrix } from './oracle.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const dir = mkdtempSync(join(tmpdir(), 'snnl-exact-'));

const base = normalMatrix(64, 8, seeded(31));
const labels = Array.from({ length: 64 }, (_, i) => i % 4);
/** The rows as the file holds them in float32 (what the oracle must see too). */
const asFloat32 = (x: Matrix) => x.map((r) => r.map((v) => Math.fround(v)));

function measure(x: Matrix, ...flags: string[]) {
  const file = join(dir, `x-${Math.random().toString(36).slice(2)}.npy`);
  writeFileSync(file, encodeNpy(x.flat(), [x.length, x[0]!.length], 'float32'));
  writeFileSync(join(dir, 'y.npy'), encodeNpy(labels, [labels.length], 'int64'));
  const run = spawnSync(
    process.execPath,
    [CLI, 'measure', file, join(dir, 'y.npy'), '--json', '--no-retrieval', ...flags],
    {
      encoding: 'utf8',
      env: { ...process.env, SNNL_BACKEND: 'wasm' },
    },
  );
  expect(run.status, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as { loss: number; temperature: number; exact?: { float32Error: number } };
}

describe('snnl measure under outliers', () => {
  it.each([1e5, 1e10, 1e15])('one value at %s: the float64 loss at T = 1', (value) => {
    const x = base.map((r) => [...r]);
    x[5]![3] = value;
    const got = measure(x, '--temperature', '1');
    const want = oracleSnnl(asFloat32(x), labels, 1, 'squared-euclidean', 'stable').loss;
    expect(relativeError(got.loss, want)).toBeLessThan(1e-4);
    expect(got.exact).toBeDefined();
  });

  it.each(['euclidean', 'squared-euclidean'] as const)('one row at 1e6, and its own large term (%s)', (distance) => {
    const x = base.map((r) => [...r]);
    x[9] = x[9]!.map((v, k) => v + (k === 0 ? 1e6 : 0));
    x[10] = x[10]!.map((v, k) => v + (k === 0 ? 1e6 + 3 : 0)); // a second far row, of another class
    const got = measure(x, '--temperature', '1', '--distance', distance);
    const want = oracleSnnl(asFloat32(x), labels, 1, distance, 'stable').loss;
    expect(relativeError(got.loss, want)).toBeLessThan(1e-4);
  });

  it('the optimal temperature under an outlier: at most the oracle on a fine grid, and within 1e-4 of its minimum', () => {
    const x = base.map((r) => [...r]);
    x[2]![1] = 1e6;
    const got = measure(x, '--temperature', 'optimal');
    const f32 = asFloat32(x);
    let best = Infinity;
    for (let u = -8; u <= 30; u += 0.01)
      best = Math.min(best, oracleSnnl(f32, labels, Math.exp(u), 'squared-euclidean', 'stable').loss);
    expect(got.loss).toBeLessThanOrEqual(best * (1 + 1e-4));
    expect(
      relativeError(oracleSnnl(f32, labels, got.temperature, 'squared-euclidean', 'stable').loss, got.loss),
    ).toBeLessThan(1e-4);
  });

  it('ordinary features keep the float32 path (no exact recomputation)', () => {
    const got = measure(base, '--temperature', '1');
    expect(got.exact).toBeUndefined();
    expect(
      relativeError(got.loss, oracleSnnl(asFloat32(base), labels, 1, 'squared-euclidean', 'stable').loss),
    ).toBeLessThan(1e-4);
  });
});

describe('the exact path', () => {
  it('matches the oracle for every distance and preset', () => {
    const x = asFloat32(base.map((r, i) => (i === 3 ? r.map((v) => v * 1e4) : r)));
    for (const distance of ['squared-euclidean', 'euclidean', 'cosine'] as const)
      for (const preset of ['stable', 'cleverhans'] as const) {
        const d = exactDistances(x.flat(), 64, 8, distance);
        const got = exactLoss(d, labels, 2, preset).loss;
        expect(
          relativeError(got, oracleSnnl(x, labels, 2, distance, preset).loss),
          `${distance} ${preset}`,
        ).toBeLessThan(1e-10);
      }
    const d = exactDistances(base.flat(), 64, 8, 'squared-euclidean');
    const best = exactOptimalTemperature(d, labels, 'stable');
    // A minimum: no lower loss a little either side (the loss is flat to about 1e-7 there).
    for (const factor of [0.9, 1.1])
      expect(exactLoss(d, labels, best.temperature * factor, 'stable').loss).toBeGreaterThanOrEqual(
        best.loss * (1 - 1e-6),
      );
  });

  it("estimates the float32 form's error: small for ordinary rows, large with an outlier; 0 for cosine", () => {
    expect(gramError(base.flat(), 64, 8, 1, 'squared-euclidean')).toBeLessThan(1e-4);
    const x = base.map((r) => [...r]);
    x[0]![0] = 1e5;
    expect(gramError(x.flat(), 64, 8, 1, 'squared-euclidean')).toBeGreaterThan(1);
    expect(gramError(x.flat(), 64, 8, 1, 'cosine')).toBe(0);
  });
});
