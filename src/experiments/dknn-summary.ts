/**
 * The Deep k-NN studies of several runs side by side (`snnl dknn-summary DIR`): per data set and
 * configuration (baseline or entangled, over seeds), accuracies, and for each outlier set the mean and
 * standard deviation of AUROC and FPR at 95% TPR, for credibility and for the maximum softmax.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { InputError } from '../errors.js';
import { mean, std } from './summary.js';
import type { DknnStudy } from './dknn.js';

/** dknn.json files under `dir` (up to four levels down), sorted. */
export function findStudies(dir: string, depth = 4): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'is not a folder');
  const found: string[] = [];
  const walk = (d: string, level: number) => {
    if (existsSync(join(d, 'dknn.json'))) found.push(join(d, 'dknn.json'));
    if (level === 0) return;
    for (const e of readdirSync(d, { withFileTypes: true })) if (e.isDirectory()) walk(join(d, e.name), level - 1);
  };
  walk(dir, depth);
  return found.sort();
}

export function readStudy(path: string): DknnStudy {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as DknnStudy;
  } catch (error) {
    throw new InputError(path, `is not a Deep k-NN result (${error instanceof Error ? error.message : String(error)})`);
  }
}

export const configOf = (s: DknnStudy) => (s.factor === 0 ? 'baseline' : `factor ${s.factor}`);

interface Stat {
  mean: number;
  std: number;
}

export interface DknnSummaryRow {
  dataset: string;
  config: string;
  seeds: number[];
  /** By set name: DkNN and network accuracy, AUROC and FPR95 of credibility and softmax. */
  sets: Record<
    string,
    {
      dknnAccuracy: Stat | null;
      networkAccuracy: Stat | null;
      aurocCredibility: Stat | null;
      aurocSoftmax: Stat | null;
      fprCredibility: Stat | null;
      fprSoftmax: Stat | null;
      meanCredibility: Stat;
    }
  >;
  gradientSnnl: Stat;
  gradientPurity: Stat;
}

export function summarizeStudies(studies: DknnStudy[]): DknnSummaryRow[] {
  const groups = new Map<string, DknnStudy[]>();
  for (const s of studies) {
    const key = `${s.dataset}\u0000${configOf(s)}`;
    groups.set(key, [...(groups.get(key) ?? []), s]);
  }
  const stat = (values: number[]): Stat => ({ mean: mean(values), std: std(values) });
  const maybe = (values: Array<number | null | undefined>): Stat | null =>
    values.every((v) => typeof v === 'number' && !Number.isNaN(v)) ? stat(values as number[]) : null;
  return [...groups.values()].map((group) => {
    const names = group[0]!.sets.map((s) => s.name);
    const sets: DknnSummaryRow['sets'] = {};
    for (const name of names) {
      const of = group.map((g) => g.sets.find((s) => s.name === name));
      sets[name] = {
        dknnAccuracy: maybe(of.map((s) => s?.dknnAccuracy)),
        networkAccuracy: maybe(of.map((s) => s?.networkAccuracy)),
        aurocCredibility: maybe(of.map((s) => s?.auroc?.credibility)),
        aurocSoftmax: maybe(of.map((s) => s?.auroc?.softmax)),
        fprCredibility: maybe(of.map((s) => s?.fpr95?.credibility)),
        fprSoftmax: maybe(of.map((s) => s?.fpr95?.softmax)),
        meanCredibility: stat(of.map((s) => s?.credibility.mean ?? NaN)),
      };
    }
    return {
      dataset: group[0]!.dataset,
      config: configOf(group[0]!),
      seeds: group.map((g) => g.seed).sort((a, b) => a - b),
      sets,
      gradientSnnl: stat(group.map((g) => g.gradients.snnlOptimal)),
      gradientPurity: stat(group.map((g) => g.gradients.knnPurity)),
    };
  });
}

const fmt = (s: Stat | null, percent = false, digits = 3) =>
  s === null
    ? '-'
    : percent
      ? `${(100 * s.mean).toFixed(1)} ± ${(100 * s.std).toFixed(1)}`
      : `${s.mean.toFixed(digits)} ± ${s.std.toFixed(digits)}`;

/** Markdown: accuracies, then one table per data set of outlier separation, then the gradient study. */
export function dknnSummaryMarkdown(rows: DknnSummaryRow[]): string {
  const lines: string[] = [];
  lines.push('| data set | configuration | seeds | network accuracy (%) | DkNN accuracy (%) | DkNN under FGSM (%) |');
  lines.push('| --- | --- | --- | --- | --- | --- |');
  for (const r of rows) {
    const fgsm = Object.keys(r.sets)
      .filter((n) => n.startsWith('fgsm-'))
      .map((n) => `eps ${n.slice(5)}: ${fmt(r.sets[n]!.dknnAccuracy, true)}`)
      .join('; ');
    lines.push(
      `| ${r.dataset} | ${r.config} | ${r.seeds.join(', ')} | ${fmt(r.sets['clean']!.networkAccuracy, true)} | ${fmt(r.sets['clean']!.dknnAccuracy, true)} | ${fgsm} |`,
    );
  }
  for (const dataset of [...new Set(rows.map((r) => r.dataset))]) {
    const here = rows.filter((r) => r.dataset === dataset);
    lines.push('', `${dataset}: clean test images against each set (mean ± std over seeds)`, '');
    lines.push(
      '| set | configuration | AUROC credibility | AUROC max softmax | FPR95 credibility (%) | FPR95 max softmax (%) |',
    );
    lines.push('| --- | --- | --- | --- | --- | --- |');
    const names = Object.keys(here[0]!.sets).filter((n) => n !== 'clean');
    for (const name of names) {
      for (const r of here) {
        const s = r.sets[name];
        if (!s) continue;
        lines.push(
          `| ${name} | ${r.config} | ${fmt(s.aurocCredibility)} | ${fmt(s.aurocSoftmax)} | ${fmt(s.fprCredibility, true)} | ${fmt(s.fprSoftmax, true)} |`,
        );
      }
    }
  }
  lines.push('', 'Input-gradient signs (sign of d cross-entropy / d input), clustering by true label', '');
  lines.push('| data set | configuration | SNNL at the optimal T | 10-NN label purity (%) |');
  lines.push('| --- | --- | --- | --- |');
  for (const r of rows)
    lines.push(`| ${r.dataset} | ${r.config} | ${fmt(r.gradientSnnl)} | ${fmt(r.gradientPurity, true)} |`);
  return lines.join('\n') + '\n';
}

/** AUROC of credibility and of max softmax per outlier set, one point per run, one panel per data set. */
export function aurocSpec(studies: DknnStudy[]): TopLevelSpec {
  const rows = studies.flatMap((s) =>
    s.sets
      .filter((set) => set.auroc !== null)
      .flatMap((set) => [
        { dataset: s.dataset, set: set.name, config: configOf(s), score: 'credibility', auroc: set.auroc!.credibility },
        { dataset: s.dataset, set: set.name, config: configOf(s), score: 'max softmax', auroc: set.auroc!.softmax },
      ]),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'AUROC, clean test images against each set (one point per seed)',
    data: { values: rows },
    facet: {
      row: { field: 'dataset', type: 'nominal', title: null },
      column: { field: 'score', type: 'nominal', title: null },
    },
    spec: {
      width: 260,
      height: 160,
      mark: { type: 'point', filled: true, size: 50, opacity: 0.8 },
      encoding: {
        x: { field: 'set', type: 'nominal', title: null, sort: null },
        xOffset: { field: 'config', type: 'nominal' },
        y: { field: 'auroc', type: 'quantitative', title: 'AUROC', scale: { domain: [0, 1] } },
        color: { field: 'config', type: 'nominal', title: 'network' },
      },
    },
    config: { view: { stroke: null } },
  } as TopLevelSpec;
}
