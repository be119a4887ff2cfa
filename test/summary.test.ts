/** `snnl summarize`: groups runs by everything but the seed; mean, sample std and best, as by hand. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pairedDifferences, summarizeRuns, unfinishedRuns } from '../src/experiments/summary.js';
import { meanInterval, tQuantile, verdictOf } from '../src/analysis/intervals.js';
import { TRAIN_DEFAULTS, type TrainConfig } from '../src/training/config.js';
import { createRun } from '../src/training/run-store.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

function fakeRun(root: string, name: string, config: Partial<TrainConfig>, accuracies: number[], snnl: number) {
  const dir = join(root, name);
  const full = {
    ...TRAIN_DEFAULTS,
    dataset: 'mnist',
    model: 'mlp',
    modelOptions: {},
    distance: 'squared-euclidean',
    epochs: Math.max(1, accuracies.length),
    ...config,
  } as TrainConfig;
  createRun(dir, full, 'cpu');
  const lines = accuracies.map((accuracy, k) =>
    JSON.stringify({
      epoch: k + 1,
      test: { accuracy },
      entanglement: { fc1: { temperature: 1, loss: snnl + 1, optimalTemperature: 1, optimalLoss: snnl } },
      seconds: 10,
    }),
  );
  writeFileSync(join(dir, 'metrics.jsonl'), lines.join('\n') + '\n');
  return dir;
}

describe('snnl summarize', () => {
  it('groups seeds of the same settings and computes mean, std and best of the last epoch', () => {
    const root = mkdtempSync(join(tmpdir(), 'snnl-summary-'));
    fakeRun(root, 'a-s1', { seed: 1 }, [0.5, 0.97], 0.1);
    fakeRun(root, 'a-s2', { seed: 2 }, [0.5, 0.98], 0.2);
    fakeRun(root, 'a-s3', { seed: 3 }, [0.5, 0.99], 0.3);
    fakeRun(root, 'b-s1', { seed: 1, factor: -1 }, [0.9], 1.5);
    fakeRun(root, 'c-s1', { seed: 1, factor: 5 }, [], 0);
    // Unfinished (1 of 2 epochs): left out, and named.
    fakeRun(root, 'a-s4', { seed: 4, epochs: 2 }, [0.1], 0.9);
    const dirs = ['a-s1', 'a-s2', 'a-s3', 'a-s4', 'b-s1', 'c-s1'].map((n) => join(root, n));
    expect(unfinishedRuns(dirs)).toEqual([join(root, 'a-s4'), join(root, 'c-s1')]);
    const rows = summarizeRuns(dirs);
    expect(rows).toHaveLength(2);
    const a = rows.find((r) => r.settings === 'mlp, baseline')!;
    expect(a.seeds).toEqual([1, 2, 3]);
    expect(a.accuracy.mean).toBeCloseTo(98, 10);
    expect(a.accuracy.std).toBeCloseTo(1, 10);
    expect(a.accuracy.best).toBeCloseTo(99, 10);
    expect(a.entanglement['fc1']!.mean).toBeCloseTo(0.2, 10);
    expect(a.entanglement['fc1']!.std).toBeCloseTo(0.1, 10);
    expect(a.trainSeconds).toBe(60);
    const b = rows.find((r) => r.settings.startsWith('mlp, factor -1'))!;
    expect([b.accuracy.mean, b.accuracy.std, b.accuracy.best]).toEqual([90, 0, 90]);
    // The command: the same table, written atomically, and a clear error for a folder without runs.
    const out = join(root, 'table');
    const run = spawnSync(process.execPath, [CLI, 'summarize', root, '--out', out], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(/left out, not finished: .*a-s4/);
    expect(run.stdout).toMatch(
      /\| mnist \| mlp, baseline \| 1, 2, 3 \| 98\.00 \(1\.00\) \| 99\.00 \| 0\.200 \(0\.100\) \|/,
    );
    expect(readFileSync(join(out, 'table.md'), 'utf8')).toBe(run.stdout);
    expect(JSON.parse(readFileSync(join(out, 'table.json'), 'utf8')).rows).toHaveLength(2);
    const empty = mkdtempSync(join(tmpdir(), 'snnl-empty-'));
    const none = spawnSync(process.execPath, [CLI, 'summarize', empty], { encoding: 'utf8' });
    expect(none.status).toBe(2);
    expect(none.stderr.trim()).toMatch(/holds no run \(no config\.json in it or its sub-folders\)$/);
  });
});

describe('paired differences against the baseline', () => {
  it("Student's t quantiles match the printed tables", () => {
    const table: [number, number][] = [
      [1, 12.7062],
      [2, 4.3027],
      [4, 2.7764],
      [10, 2.2281],
      [30, 2.0423],
    ];
    for (const [df, t] of table) expect(tQuantile(0.975, df), `df ${df}`).toBeCloseTo(t, 4);
    expect(tQuantile(0.95, 4)).toBeCloseTo(2.1318, 4);
    expect(() => tQuantile(0.4, 3)).toThrow(RangeError);
    const one = meanInterval([2]);
    expect([one.low, one.high, verdictOf(one)]).toEqual([null, null, 'not distinguishable']);
  });

  it('pair seeds with the baseline trained the same way, with the t interval and verdict by hand', () => {
    const root = mkdtempSync(join(tmpdir(), 'snnl-paired-'));
    const dirs = [
      fakeRun(root, 'b1', { seed: 1, pixels: 'unit' }, [0.97], 0),
      fakeRun(root, 'b2', { seed: 2, pixels: 'unit' }, [0.98], 0),
      fakeRun(root, 'b3', { seed: 3, pixels: 'unit' }, [0.99], 0),
      // Within noise: +0.5, +1.0, -0.5 points.
      fakeRun(root, 'e1', { seed: 1, pixels: 'unit', factor: -10 }, [0.975], 0),
      fakeRun(root, 'e2', { seed: 2, pixels: 'unit', factor: -10 }, [0.99], 0),
      fakeRun(root, 'e3', { seed: 3, pixels: 'unit', factor: -10 }, [0.985], 0),
      // Worse: -2, -3, -2.5 points; seed 4 has no baseline and is left out of the pairs.
      fakeRun(root, 'w1', { seed: 1, pixels: 'unit', factor: -1 }, [0.95], 0),
      fakeRun(root, 'w2', { seed: 2, pixels: 'unit', factor: -1 }, [0.95], 0),
      fakeRun(root, 'w3', { seed: 3, pixels: 'unit', factor: -1 }, [0.965], 0),
      fakeRun(root, 'w4', { seed: 4, pixels: 'unit', factor: -1 }, [0.5], 0),
      // Normalized pixels: no baseline trained that way, so no pair.
      fakeRun(root, 'n1', { seed: 1, factor: -10 }, [0.9], 0),
    ];
    const paired = pairedDifferences(summarizeRuns(dirs));
    expect(paired).toHaveLength(2);
    const within = paired.find((p) => p.settings.includes('factor -10'))!;
    expect(within.baseline).toBe('mlp, baseline, pixels in [0, 1]');
    expect(within.seeds).toEqual([1, 2, 3]);
    within.differences.forEach((d, i) => expect(d).toBeCloseTo([0.5, 1, -0.5][i]!, 9));
    const sd = Math.sqrt(((0.5 - 1 / 3) ** 2 + (1 - 1 / 3) ** 2 + (-0.5 - 1 / 3) ** 2) / 2);
    expect(within.mean).toBeCloseTo(1 / 3, 9);
    expect(within.low!).toBeCloseTo(1 / 3 - (4.302653 * sd) / Math.sqrt(3), 5);
    expect(within.high!).toBeCloseTo(1 / 3 + (4.302653 * sd) / Math.sqrt(3), 5);
    expect(within.verdict).toBe('not distinguishable');
    const worse = paired.find((p) => p.settings.includes('factor -1,'))!;
    expect(worse.seeds).toEqual([1, 2, 3]);
    expect(worse.mean).toBeCloseTo(-2.5, 9);
    expect(worse.high!).toBeCloseTo(-2.5 + (4.302653 * 0.5) / Math.sqrt(3), 5);
    expect(worse.verdict).toBe('worse');
    // The command prints the paired table under the main one.
    const run = spawnSync(process.execPath, [CLI, 'summarize', root], { encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/\| mnist \| mlp, factor -1, .* \| 1, 2, 3 \| -2\.00, -3\.00, -2\.50 \| -2\.50 \|/);
  });
});
