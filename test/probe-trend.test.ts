/**
 * The fall-and-rise verdict on probe curves: a known curve with known noise, a flat noisy curve, and the
 * noise estimate's scale.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { probeTrend } from '../src/analysis/probe-trend.js';
import { seeded } from './oracle.js';

const gauss = (r: () => number) => Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());

describe('probe trend', () => {
  const progress = Array.from({ length: 65 }, (_, k) => k / 2);

  it('finds the minimum of a fall-then-rise curve, and says both exceed the noise', () => {
    const r = seeded(4);
    // 0.8 falling to 0.5 at epoch 12, rising by 0.05 by epoch 32; noise 0.004.
    const curve = progress.map(
      (p) => (p < 12 ? 0.8 - (0.3 * p) / 12 : 0.5 + (0.05 * (p - 12)) / 20) + 0.004 * gauss(r),
    );
    const t = probeTrend(progress, curve);
    expect(t.minimumAt).toBeGreaterThan(10);
    expect(t.minimumAt).toBeLessThan(14);
    expect(t.noise).toBeGreaterThan(0.002);
    expect(t.noise).toBeLessThan(0.007);
    expect(t.falls).toBe(true);
    expect(t.rises).toBe(true);
    expect(t.rise).toBeGreaterThan(0.03);
    expect(t.rise).toBeLessThan(0.07);
  });

  it('a falling then flat noisy curve falls but does not rise', () => {
    const r = seeded(9);
    let rises = 0;
    for (let trial = 0; trial < 20; trial++) {
      const curve = progress.map((p) => (p < 8 ? 0.8 - (0.3 * p) / 8 : 0.5) + 0.01 * gauss(r));
      const t = probeTrend(progress, curve);
      expect(t.falls).toBe(true);
      if (t.rises) rises++;
    }
    // 3 standard errors: a false rise is rare (the minimum of a noisy flat stretch biases it upward a little).
    expect(rises).toBeLessThanOrEqual(3);
  });

  it('refuses curves too short to judge', () => {
    expect(() => probeTrend([0, 1, 2], [1, 2, 3])).toThrow(/too few/);
  });
});

describe('snnl probe-trend', () => {
  it('exits 2 with one line for a folder without probed runs', () => {
    const dir = mkdtempSync(join(tmpdir(), 'snnl-trend-'));
    const result = spawnSync(
      process.execPath,
      [join(import.meta.dirname, '..', 'dist', 'cli', 'main.js'), 'probe-trend', dir],
      {
        encoding: 'utf8',
      },
    );
    expect(result.status).toBe(2);
    expect(result.stderr.trim()).toBe(`snnl: ${dir}: holds no run (no config.json in it or its sub-folders)`);
  });
});
