/**
 * A table over seeds of any folder of runs: runs are grouped by data set and settings (everything in
 * their config but the seed), and each group gets the mean, sample standard deviation and best of its
 * final test accuracy and of each hidden layer's final entanglement (SNNL at the optimal temperature),
 * with the commits its runs came from.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { meanInterval, verdictOf, type Verdict } from '../analysis/intervals.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import type { TrainConfig } from '../training/config.js';
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
  /** The group's config, less the seed. */
  config: Omit<TrainConfig, 'seed'>;
}

/** An SNNL group against the baseline trained on the same inputs, seed by seed. */
export interface PairedRow {
  dataset: string;
  settings: string;
  baseline: string;
  /** Seeds both groups finished. */
  seeds: number[];
  /** Test accuracy points, this group minus the baseline, per seed. */
  differences: number[];
  mean: number;
  std: number;
  /** The 95% t interval of the mean difference (null for one seed). */
  low: number | null;
  high: number | null;
  verdict: Verdict;
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
    const pixels = c.pixels === 'unit' ? ', pixels in [0, 1]' : '';
    const settings =
      c.factor === 0
        ? `${c.model}, baseline${pixels}`
        : `${c.model}, factor ${c.factor}, T ${c.temperature}${c.optimizeTemperature ? ' (one-step update)' : ''}${c.relativeTemperature ? ' (relative)' : ''}, ${c.preset}, ${c.distance}${pixels}`;
    const row = groups.get(key) ?? {
      dataset: c.dataset,
      settings,
      seeds: [],
      epochs: [],
      accuracy: { mean: 0, std: 0, best: 0, values: [] },
      entanglement: {},
      commits: [],
      trainSeconds: 0,
      config: rest,
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

/** What a baseline must share with an SNNL group to be its pair: everything but the SNNL term's settings. */
function sameTraining(a: Omit<TrainConfig, 'seed'>, b: Omit<TrainConfig, 'seed'>): boolean {
  const training = (c: Omit<TrainConfig, 'seed'>) =>
    JSON.stringify([
      c.dataset,
      c.dataDir ?? null,
      c.pixels ?? 'normalized',
      c.model,
      c.modelOptions,
      c.epochs,
      c.batchSize,
      c.lr,
      c.evalSample,
      c.trainSubset ?? null,
      c.inputShape ?? null,
    ]);
  return training(a) === training(b);
}

/**
 * Each SNNL group against the baseline group trained the same way (same data, pixels, model, epochs,
 * batch, learning rate): the paired difference of final test accuracy over the seeds both finished, its
 * mean with a 95% t interval, and the verdict (better or worse where the interval excludes 0).
 */
export function pairedDifferences(rows: SummaryRow[]): PairedRow[] {
  const paired: PairedRow[] = [];
  for (const row of rows) {
    if (row.config.factor === 0) continue;
    const baseline = rows.find((b) => b.config.factor === 0 && sameTraining(b.config, row.config));
    if (!baseline) continue;
    const seeds = row.seeds.filter((s) => baseline.seeds.includes(s));
    if (seeds.length === 0) continue;
    const differences = seeds.map(
      (s) => row.accuracy.values[row.seeds.indexOf(s)]! - baseline.accuracy.values[baseline.seeds.indexOf(s)]!,
    );
    const interval = meanInterval(differences);
    paired.push({
      dataset: row.dataset,
      settings: row.settings,
      baseline: baseline.settings,
      seeds,
      differences,
      mean: interval.mean,
      std: interval.std,
      low: interval.low,
      high: interval.high,
      verdict: verdictOf(interval),
    });
  }
  return paired;
}

/** The paired table as markdown. */
export function pairedMarkdown(rows: PairedRow[]): string {
  const header = ['data set', 'settings', 'seeds', 'minus baseline, per seed', 'mean', '95% interval', 'verdict'];
  const lines = [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`];
  const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
  for (const r of rows) {
    const interval = r.low === null ? 'one seed' : `${signed(r.low)} to ${signed(r.high!)}`;
    const cells = [r.dataset, r.settings, r.seeds.join(', '), r.differences.map(signed).join(', ')];
    lines.push(`| ${[...cells, signed(r.mean), interval, r.verdict].join(' | ')} |`);
  }
  return lines.join('\n') + '\n';
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

/** The table, and where the folder has baselines, the paired table with its heading. */
export function summaryDocument(rows: SummaryRow[]): string {
  const paired = pairedDifferences(rows);
  if (paired.length === 0) return summaryMarkdown(rows);
  return (
    summaryMarkdown(rows) +
    '\nTest accuracy, minus the baseline trained the same way with the same seed (points; 95% t interval ' +
    'of the mean over the seeds; better or worse where the interval excludes 0):\n\n' +
    pairedMarkdown(paired)
  );
}

/** Writes table.md and table.json into `out`. */
export function writeSummaryTable(out: string, rows: SummaryRow[]): void {
  mkdirSync(out, { recursive: true });
  writeAtomic(join(out, 'table.md'), summaryDocument(rows));
  writeJsonAtomic(join(out, 'table.json'), { rows, paired: pairedDifferences(rows) });
}
