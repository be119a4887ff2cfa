/** `snnl summarize`: groups runs by everything but the seed; mean, sample std and best, as by hand. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { summarizeRuns, unfinishedRuns } from '../src/experiments/summary.js';
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
