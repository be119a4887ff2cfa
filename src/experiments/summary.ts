/**
 * A table over seeds of any folder of runs: runs are grouped by data set and settings (everything in
 * their config but the seed), and each group gets the mean, sample standard deviation and best of its
 * final test accuracy and of each hidden layer's final entanglement (SNNL at the optimal temperature),
 * with the commits its runs came from.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { readHistory, readStoredConfig } from '../training/run-store.js';

export interface SummaryRow {
  dataset: string;
  /** The settings that differ between groups: factor, temperature, preset, distance, model. */
  settings: string;
  seeds: number[];
  epochs: number[];
  accuracy: { mean: number; std: number; best: number; values: number[] };
  entanglement: Record<string, { mean: number; std: number; values: number[] }>;
  commits: string[];
  trainSeconds: number;
}

export const mean = (v: number[]) => v.reduce((a, x) => a + x, 0) / v.length;
/** The sample standard deviation (n - 1); 0 for fewer than two values. */
export const std = (v: number[]) =>
  v.length < 2 ? 0 : Math.sqrt(v.reduce((a, x) => a + (x - mean(v)) ** 2, 0) / (v.length - 1));

/** The runs among `dirs` that have not finished all their epochs (left out of a summary). */
export function unfinishedRuns(dirs: string[]): string[] {
  return dirs.filter((dir) => readHistory(dir).length < readStoredConfig(dir).config.epochs);
}

/** The groups of the runs among `dirs` that finished all their epochs (others are left out). */
export function summarizeRuns(dirs: string[]): SummaryRow[] {
  const groups = new Map<string, SummaryRow>();
  for (const dir of dirs) {
    const stored = readStoredConfig(dir);
    const history = readHistory(dir);
    const last = history.at(-1);
    if (!last || last.test.accuracy === null || history.length < stored.config.epochs) continue;
    const { seed, ...rest } = stored.config;
    const key = JSON.stringify(rest);
    const c = stored.config;
    const settings =
      c.factor === 0
        ? `${c.model}, baseline`
        : `${c.model}, factor ${c.factor}, T ${c.temperature}${c.optimizeTemperature ? ' (one-step update)' : ''}${c.relativeTemperature ? ' (relative)' : ''}, ${c.preset}, ${c.distance}`;
    const row = groups.get(key) ?? {
      dataset: c.dataset,
      settings,
      seeds: [],
      epochs: [],
      accuracy: { mean: 0, std: 0, best: 0, values: [] },
      entanglement: {},
      commits: [],
      trainSeconds: 0,
    };
    row.seeds.push(seed);
    row.epochs.push(history.length);
    row.accuracy.values.push(100 * last.test.accuracy);
    for (const [layer, e] of Object.entries(last.entanglement)) {
      (row.entanglement[layer] ??= { mean: 0, std: 0, values: [] }).values.push(e.optimalLoss);
    }
    const commit = stored.commit ? `${stored.commit.slice(0, 7)}${stored.dirty ? '+' : ''}` : 'unknown';
    if (!row.commits.includes(commit)) row.commits.push(commit);
    row.trainSeconds += history.reduce((a, m) => a + m.seconds, 0);
    groups.set(key, row);
  }
  const rows = [...groups.values()];
  for (const row of rows) {
    const v = row.accuracy.values;
    row.accuracy = { mean: mean(v), std: std(v), best: Math.max(...v), values: v };
    for (const e of Object.values(row.entanglement)) Object.assign(e, { mean: mean(e.values), std: std(e.values) });
  }
  return rows.sort((a, b) => a.dataset.localeCompare(b.dataset));
}

/** The table as markdown: one line per group. */
export function summaryMarkdown(rows: SummaryRow[]): string {
  const layers = [...new Set(rows.flatMap((r) => Object.keys(r.entanglement)))];
  const header = [
    'data set',
    'settings',
    'seeds',
    'test accuracy % mean (std)',
    'best',
    ...layers.map((l) => `SNNL ${l}`),
    'commits',
  ];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  for (const r of rows) {
    const cells = [
      r.dataset,
      r.settings,
      r.seeds.join(', '),
      `${r.accuracy.mean.toFixed(2)} (${r.accuracy.std.toFixed(2)})`,
      r.accuracy.best.toFixed(2),
      ...layers.map((l) =>
        r.entanglement[l] ? `${r.entanglement[l].mean.toFixed(3)} (${r.entanglement[l].std.toFixed(3)})` : '-',
      ),
      r.commits.join(', '),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
}

/** Writes table.md and table.json into `out`. */
export function writeSummaryTable(out: string, rows: SummaryRow[]): void {
  mkdirSync(out, { recursive: true });
  writeAtomic(join(out, 'table.md'), summaryMarkdown(rows));
  writeJsonAtomic(join(out, 'table.json'), { rows });
}
