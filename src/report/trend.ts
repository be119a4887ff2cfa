/**
 * `snnl probe-trend DIR`: for every run under DIR with probes (snnl train --probe-layers), whether each
 * probed layer's SNNL falls and then rises beyond its probe-to-probe noise (analysis/probe-trend.ts),
 * beside when the network fitted its training set and when its test loss was lowest.
 */
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { probeTrend, TREND_DEFAULTS, type ProbeTrend } from '../analysis/probe-trend.js';
import { readProbes } from '../training/probes.js';
import { readHistory, runFiles } from '../training/run-store.js';
import { findRuns } from './report.js';

export interface TrendRun {
  run: string;
  /** First epoch with training accuracy of at least 99% and 100% (null: never). */
  fitted99: number | null;
  fitted100: number | null;
  /** Epoch of the lowest test loss, and the test loss then and at the end. */
  bestTestLossEpoch: number | null;
  bestTestLoss: number | null;
  finalTestLoss: number | null;
  finalTestAccuracy: number | null;
  layers: Record<string, ProbeTrend>;
}

export function trendRuns(dir: string): TrendRun[] {
  const runs = findRuns(dir).filter((r) => readProbes(runFiles(r).probes).length > 0);
  if (runs.length === 0) throw new InputError(dir, 'holds no run with probes (snnl train --probe-layers)');
  return runs.map((r) => {
    const probes = readProbes(runFiles(r).probes);
    const history = readHistory(r);
    const names = Object.keys(probes[0]!.layers);
    const progress = probes.map((p) => p.progress);
    const needed = 2 * TREND_DEFAULTS.window;
    if (probes.length < needed)
      throw new InputError(r, `has ${probes.length} probes; a trend needs at least ${needed}`);
    const layers = Object.fromEntries(
      names.map((name) => [
        name,
        probeTrend(
          progress,
          probes.map((p) => p.layers[name]!.optimalLoss),
        ),
      ]),
    );
    const firstAt = (share: number) =>
      history.find((m) => m.train.accuracy !== null && m.train.accuracy >= share)?.epoch ?? null;
    const losses = history.filter((m) => m.test.loss !== undefined);
    const best = losses.reduce<(typeof losses)[number] | undefined>(
      (b, m) => (b === undefined || m.test.loss! < b.test.loss! ? m : b),
      undefined,
    );
    return {
      run: r.slice(dir.length + 1) || r,
      fitted99: firstAt(0.99),
      fitted100: firstAt(1),
      bestTestLossEpoch: best?.epoch ?? null,
      bestTestLoss: best?.test.loss ?? null,
      finalTestLoss: losses.at(-1)?.test.loss ?? null,
      finalTestAccuracy: history.at(-1)?.test.accuracy ?? null,
      layers,
    };
  });
}

const f3 = (v: number) => v.toFixed(3);
const f4 = (v: number) => v.toFixed(4);

export function trendMarkdown(runs: TrendRun[]): string {
  const { window, tail, sigmas } = TREND_DEFAULTS;
  const lines = [
    `Per probed layer: SNNL at the optimal temperature at the first probe, its minimum (a ${window}-probe moving`,
    `average) and where, the mean of the last ${tail} probes, and the probe-to-probe noise (robust, from second`,
    `differences). Falls / rises: the change exceeds ${sigmas} standard errors of the difference.`,
    '',
    '| run | fits 99% / 100% (epoch) | lowest test loss (epoch) | final test loss | final test accuracy |',
    '| --- | --- | --- | --- | --- |',
    ...runs.map(
      (r) =>
        `| ${r.run} | ${r.fitted99 ?? '-'} / ${r.fitted100 ?? '-'} | ${r.bestTestLoss === null ? '-' : `${f4(r.bestTestLoss)} (${r.bestTestLossEpoch})`} | ${r.finalTestLoss === null ? '-' : f4(r.finalTestLoss)} | ${r.finalTestAccuracy === null ? '-' : `${(100 * r.finalTestAccuracy).toFixed(2)}%`} |`,
    ),
    '',
    '| run | layer | start | minimum (epoch) | end | noise | fall | rise | falls | rises |',
    '| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |',
  ];
  for (const r of runs)
    for (const [layer, t] of Object.entries(r.layers))
      lines.push(
        `| ${r.run} | ${layer} | ${f3(t.start)} | ${f3(t.minimum)} (${t.minimumAt.toFixed(1)}) | ${f3(t.end)} | ${f4(t.noise)} | ${f3(t.fall)} | ${f3(t.rise)} | ${t.falls ? 'yes' : 'no'} | ${t.rises ? 'yes' : 'no'} |`,
      );
  return lines.join('\n') + '\n';
}

export const trendFiles = (out: string) => ({ markdown: join(out, 'trend.md'), json: join(out, 'trend.json') });
