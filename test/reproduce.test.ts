import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PUBLISHED, reproducePlan, TABLE_CONFIGS } from '../src/experiments/reproduce.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const snnlCli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SNNL_BACKEND: 'wasm' } });

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
    expect(partialTable).toMatch(/the runs in this table trained for \d/);
  }, 420_000);

  it('rejects a data set outside the table and bad seeds', () => {
    expect(snnlCli('reproduce', '--datasets', 'cifar10').stderr).toMatch(
      /--datasets: 'cifar10' is not in the published table/,
    );
    expect(snnlCli('reproduce', '--seeds', 'a,b').status).toBe(2);
  });
});
