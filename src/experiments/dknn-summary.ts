/**
 * The Deep k-NN studies of several runs side by side (`snnl dknn-summary DIR`): per data set and
 * configuration (baseline or entangled, over seeds), accuracies, and for each outlier set the mean and
 * standard deviation of AUROC and FPR at 95% TPR of every detector (credibility, maximum softmax, and where
 * the studies have them energy, Mahalanobis, k-th NN distance); then the paired differences with their
 * intervals (dknn-paired.ts).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { InputError } from '../errors.js';
import { mean, std } from './summary.js';
import type { DknnStudy } from './dknn.js';
import { DETECTOR_LABELS, DETECTORS, type DetectorName } from './dknn-detectors.js';

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
      /** Per detector the studies have: AUROC and FPR at 95% TPR against the clean test images. */
      auroc: Partial<Record<DetectorName, Stat>>;
      fpr95: Partial<Record<DetectorName, Stat>>;
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
      const auroc: Partial<Record<DetectorName, Stat>> = {};
      const fpr95: Partial<Record<DetectorName, Stat>> = {};
      for (const d of DETECTORS) {
        const a = maybe(of.map((s) => s?.auroc?.[d]));
        const f = maybe(of.map((s) => s?.fpr95?.[d]));
        if (a) auroc[d] = a;
        if (f) fpr95[d] = f;
      }
      sets[name] = {
        dknnAccuracy: maybe(of.map((s) => s?.dknnAccuracy)),
        networkAccuracy: maybe(of.map((s) => s?.networkAccuracy)),
        auroc,
        fpr95,
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
    const names = Object.keys(here[0]!.sets).filter((n) => n !== 'clean');
    const detectors = DETECTORS.filter((d) => here.some((r) => Object.values(r.sets).some((s) => s.auroc[d])));
    for (const [what, key, percent] of [
      ['AUROC', 'auroc', false],
      ['FPR at 95% TPR (%)', 'fpr95', true],
    ] as const) {
      lines.push('', `${dataset}: ${what}, clean test images against each set (mean ± std over seeds)`, '');
      lines.push(`| set | configuration | ${detectors.map((d) => DETECTOR_LABELS[d]).join(' | ')} |`);
      lines.push(`| --- | --- | ${detectors.map(() => '---').join(' | ')} |`);
      for (const name of names) {
        for (const r of here) {
          const s = r.sets[name];
          if (!s) continue;
          lines.push(
            `| ${name} | ${r.config} | ${detectors.map((d) => fmt(s[key][d] ?? null, percent)).join(' | ')} |`,
          );
        }
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

/** AUROC of every detector per outlier set, one point per run: a row of panels per data set, a column per detector. */
export function aurocSpec(studies: DknnStudy[]): TopLevelSpec {
  const rows = studies.flatMap((s) =>
    s.sets
      .filter((set) => set.auroc !== null)
      .flatMap((set) =>
        DETECTORS.filter((d) => set.auroc![d] !== undefined).map((d) => ({
          dataset: s.dataset,
          set: set.name,
          config: configOf(s),
          score: DETECTOR_LABELS[d],
          auroc: set.auroc![d]!,
        })),
      ),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'AUROC, clean test images against each set (one point per seed)',
    data: { values: rows },
    facet: {
      row: { field: 'dataset', type: 'nominal', title: null },
      column: { field: 'score', type: 'nominal', title: null, sort: DETECTORS.map((d) => DETECTOR_LABELS[d]) },
    },
    spec: {
      width: 200,
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
