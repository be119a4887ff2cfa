import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PUBLISHED, reproducePlan, TABLE_CONFIGS, tableCells } from '../src/experiments/reproduce.js';
import type { RunOutcome } from '../src/experiments/runs.js';
import type { EpochMetrics } from '../src/training/loop.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
// The fastest backend available (native where built, as in CI; else wasm): five CNN runs and their
// evaluations on the whole test split took 219 s of the suite on wasm.
const snnlCli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SNNL_BACKEND: 'auto' } });

describe('the table over several seeds', () => {
  it('computes mean, sample standard deviation and best per configuration, as by hand', () => {
    const root = mkdtempSync(join(tmpdir(), 'snnl-cells-'));
    // Test accuracy and published-protocol accuracy of three seeds of the baseline, one of T100-a10.
    const runs: Array<[string, number, number[], number]> = [
      ['baseline', 1234, [0.5, 0.97], 0.991],
      ['baseline', 42, [0.6, 0.98], 0.995],
      ['baseline', 73, [0.7, 0.99], 0.999],
      ['T100-a10', 42, [0.9], 0.9],
    ];
    const outcomes: RunOutcome[] = runs.map(([config, seed, accuracies, protocol]) => {
      const name = join('mnist', `${config}-s${seed}`);
      const dir = join(root, name);
      mkdirSync(dir, { recursive: true });
      // The published-protocol accuracy is computed once per run and kept beside it.
      writeFileSync(join(dir, 'protocol.json'), JSON.stringify({ accuracy: protocol }));
      const history = accuracies.map((accuracy, k) => ({ epoch: k + 1, test: { accuracy } }) as EpochMetrics);
      return { name, dir, history, status: 'trained' };
    });
    const cells = tableCells('mnist', outcomes);
    const baseline = cells.find((c) => c.config === 'baseline')!;
    expect(baseline.seeds).toEqual([1234, 42, 73]);
    // Last epoch only: 97, 98, 99 -> mean 98, sample std sqrt(((-1)^2 + 0 + 1^2) / 2) = 1, best 99.
    expect(baseline.test.map((v) => Number(v.toFixed(10)))).toEqual([97, 98, 99]);
    expect(baseline.mean).toBeCloseTo(98, 10);
    expect(baseline.std).toBeCloseTo(1, 10);
    expect(baseline.best).toBeCloseTo(99, 10);
    expect(baseline.publishedProtocol.map((v) => Number(v.toFixed(10)))).toEqual([99.1, 99.5, 99.9]);
    expect(baseline.published).toEqual([99.68, 99.81]);
    const one = cells.find((c) => c.config === 'T100-a10')!;
    expect([one.mean, one.std, one.best].map((v) => Number(v.toFixed(10)))).toEqual([90, 0, 90]);
    // A configuration with no finished run has no figures.
    const none = cells.find((c) => c.config === 'T0-a-10')!;
    expect(none.seeds).toEqual([]);
    expect(Number.isFinite(none.mean)).toBe(false);
  });
});

describe('snnl reproduce', () => {
  it("plans the published code's five configurations with its settings", () => {
    const plan = reproducePlan('svhn', { out: 'x', datasets: ['svhn'], seeds: [1234, 42] });
    expect(plan).toHaveLength(10);
    expect(plan.map((p) => p.name)).toContain(join('svhn', 'T0-a-10-s42'));
    for (const { config } of plan) {
      expect(config).toMatchObject({
        model: 'cnn',
        preset: 'pt-snnl',
        distance: 'cosine',
        layerWeights: 'pt-snnl',
        batchSize: 128,
        lr: 1e-3,
        epochs: 20,
      });
    }
    expect(plan.find((p) => p.name.includes('T0-a10'))!.config.temperature).toBe('annealed');
    expect(reproducePlan('mnist', { out: 'x', datasets: ['mnist'], seeds: [1] })[0]!.config.epochs).toBe(10);
    expect(Object.keys(PUBLISHED['svhn']!)).toEqual(TABLE_CONFIGS.map((c) => c.name));
  });

  it('writes a five-row table, says which data sets it skipped, and redoes no finished run', () => {
    const out = mkdtempSync(join(tmpdir(), 'snnl-reproduce-'));
    const args = [
      'reproduce',
      '--datasets',
      'mnist,svhn',
      '--seeds',
      '7',
      '--epochs',
      '1',
      '--train-subset',
      '256',
      '--eval-sample',
      '40',
      '--points',
      '20',
      '--data-dir',
      out,
      '--out',
      out,
    ];
    const first = snnlCli(...args);
    expect(first.status).toBe(0);
    expect(first.stderr).toMatch(/skipping svhn: not available/);
    const table = readFileSync(join(out, 'table.md'), 'utf8');
    const rows = table.split('\n').filter((l) => /^\| (Baseline|SNNL)/.test(l));
    expect(rows).toHaveLength(5);
    expect(table).toMatch(/\| Baseline \| [\d.]+ \| 0\.00 \| [\d.]+ \| 99\.68 \| 99\.81 \| [\d.]+ \| [\d.]+ \|/);
    expect(table).toMatch(/Skipped svhn/);
    // The last column names the seeds behind each row.
    for (const row of rows) expect(row).toMatch(/\| 7 \|$/);
    const json = JSON.parse(readFileSync(join(out, 'table.json'), 'utf8'));
    expect(json.cells).toHaveLength(5);
    expect(json.cells[0]).toMatchObject({
      dataset: 'mnist',
      config: 'baseline',
      seeds: [7],
      published: [99.68, 99.81],
    });
    // The report shows the table and pictures every configuration's layers (the first seed's runs).
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('<h2>Table</h2>');
    const umap = html.slice(html.indexOf('<figure id="representations-umap">'));
    for (const label of ['baseline', 'SNNL a=10, T=100', 'SNNL a=-10, T=annealed']) expect(umap).toContain(label);
    const second = snnlCli(...args);
    expect(second.status).toBe(0);
    expect(second.stderr.match(/finished before, skipped/g)).toHaveLength(5);
    expect(second.stderr).not.toMatch(/epoch 1\/1/);
    // --table-only trains nothing: seed 8's runs are named and left out, the table holds seed 7's.
    const seeds = args.indexOf('--seeds') + 1;
    const partial = snnlCli(...args.slice(0, seeds), '7,8', ...args.slice(seeds + 1), '--table-only');
    expect(partial.status).toBe(0);
    expect(partial.stderr.match(/mnist\/[\w-]+-s8: not finished, left out/g)).toHaveLength(5);
    expect(partial.stderr).not.toMatch(/epoch 1\/1/);
    const partialTable = readFileSync(join(out, 'table.md'), 'utf8');
    expect(partialTable).toMatch(/\(seeds 7\)/);
    expect(partialTable).toMatch(/Written with --table-only from the 5 runs finished so far/);
    expect(partialTable).toMatch(/the runs in this table took \d.* of training and \d.* wall time in all/);
  }, 420_000);

  it('rejects a data set outside the table and bad seeds', () => {
    expect(snnlCli('reproduce', '--datasets', 'cifar10').stderr).toMatch(
      /--datasets: 'cifar10' is not in the published table/,
    );
    expect(snnlCli('reproduce', '--seeds', 'a,b').status).toBe(2);
  });
});
