/**
 * Paired verdicts on Deep k-NN studies over seeds, with intervals from a two-level bootstrap.
 *
 * Each dknn.json keeps R bootstrap replicates of every AUROC: the clean and outlier examples resampled
 * with a seed fixed by the set's name, so replicate r of two networks (or of two detectors of one
 * network) is computed on the same resampled examples. A difference's interval then resamples both
 * sources of variation: B times, draw the seeds with replacement, and for each drawn seed one replicate
 * index r; the statistic is the mean over the drawn seeds of (replicate r of one side minus replicate r
 * of the other). The 2.5th and 97.5th percentiles of the B values give the 95% interval; the point
 * estimate is the mean difference of the studies' own AUROCs. Verdict: better or worse when the interval
 * excludes 0, otherwise not distinguishable.
 */
import { seededRandom } from '../random.js';
import type { DknnStudy } from './dknn.js';
import { configOf } from './dknn-summary.js';
import { DETECTORS, type DetectorName } from './dknn-detectors.js';

export const PAIRED_DRAWS = 2000;

export interface PairedDifference {
  dataset: string;
  set: string;
  /** 'entangled - baseline' (per detector), or 'credibility - <detector>' (within one configuration). */
  comparison: string;
  detector: DetectorName;
  config: string;
  seeds: number[];
  mean: number;
  lower: number;
  upper: number;
  verdict: 'better' | 'worse' | 'not distinguishable';
}

interface Side {
  auroc: number;
  replicates: number[];
}

function quantile(sorted: Float64Array, q: number): number {
  const pos = q * (sorted.length - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(sorted.length - 1, lo + 1);
  return sorted[lo]! + (pos - lo) * (sorted[hi]! - sorted[lo]!);
}

/** Mean of a - b over seeds, and its two-level bootstrap interval (pairs: one per seed). */
export function pairedInterval(
  pairs: Array<{ a: Side; b: Side }>,
  draws = PAIRED_DRAWS,
  seed = 1234,
): { mean: number; lower: number; upper: number } {
  const mean = pairs.reduce((t, p) => t + p.a.auroc - p.b.auroc, 0) / pairs.length;
  const replicates = Math.min(...pairs.map((p) => Math.min(p.a.replicates.length, p.b.replicates.length)));
  if (!(replicates > 0) || pairs.length === 0) return { mean, lower: NaN, upper: NaN };
  const random = seededRandom(seed);
  const values = new Float64Array(draws);
  for (let b = 0; b < draws; b++) {
    let sum = 0;
    for (let s = 0; s < pairs.length; s++) {
      const p = pairs[Math.floor(random() * pairs.length)]!;
      const r = Math.floor(random() * replicates);
      sum += p.a.replicates[r]! - p.b.replicates[r]!;
    }
    values[b] = sum / pairs.length;
  }
  values.sort();
  return { mean, lower: quantile(values, 0.025), upper: quantile(values, 0.975) };
}

const verdictOf = (lower: number, upper: number): PairedDifference['verdict'] =>
  lower > 0 ? 'better' : upper < 0 ? 'worse' : 'not distinguishable';

function side(study: DknnStudy, set: string, detector: DetectorName): Side | null {
  const s = study.sets.find((x) => x.name === set);
  const value = s?.auroc?.[detector];
  const replicates = s?.aurocReplicates?.[detector];
  return typeof value === 'number' && replicates ? { auroc: value, replicates } : null;
}

/**
 * Every paired difference the studies allow: per data set, outlier set and detector, each entangled
 * configuration minus the baseline of the same seed; and within each configuration, credibility minus
 * each other detector (the same network and examples).
 */
export function pairedDifferences(studies: DknnStudy[]): PairedDifference[] {
  const out: PairedDifference[] = [];
  const datasets = [...new Set(studies.map((s) => s.dataset))];
  for (const dataset of datasets) {
    const here = studies.filter((s) => s.dataset === dataset);
    const configs = [...new Set(here.map(configOf))];
    const sets = [...new Set(here.flatMap((s) => s.sets.filter((x) => x.auroc !== null).map((x) => x.name)))];
    const add = (
      set: string,
      comparison: string,
      detector: DetectorName,
      config: string,
      pairs: Array<{ seed: number; a: Side | null; b: Side | null }>,
    ) => {
      const complete = pairs.filter((p): p is { seed: number; a: Side; b: Side } => p.a !== null && p.b !== null);
      if (complete.length < 2) return;
      const { mean, lower, upper } = pairedInterval(complete);
      out.push({
        dataset,
        set,
        comparison,
        detector,
        config,
        seeds: complete.map((p) => p.seed),
        mean,
        lower,
        upper,
        verdict: verdictOf(lower, upper),
      });
    };
    for (const set of sets) {
      for (const config of configs.filter((c) => c !== 'baseline')) {
        for (const detector of DETECTORS) {
          const pairs = here
            .filter((s) => configOf(s) === config)
            .map((e) => {
              const b = here.find((s) => configOf(s) === 'baseline' && s.seed === e.seed);
              return { seed: e.seed, a: side(e, set, detector), b: b ? side(b, set, detector) : null };
            });
          add(set, 'entangled - baseline', detector, config, pairs);
        }
      }
      for (const config of configs) {
        const group = here.filter((s) => configOf(s) === config);
        for (const detector of DETECTORS.filter((d) => d !== 'credibility')) {
          const pairs = group.map((s) => ({ seed: s.seed, a: side(s, set, 'credibility'), b: side(s, set, detector) }));
          add(set, `credibility - ${detector}`, detector, config, pairs);
        }
      }
    }
  }
  return out;
}

const signed = (v: number) => `${v >= 0 ? '+' : ''}${v.toFixed(3)}`;

/** Markdown tables of the paired differences: entangled minus baseline, then credibility minus each detector. */
export function pairedMarkdown(rows: PairedDifference[]): string {
  if (rows.length === 0) return '';
  const lines: string[] = [];
  const line = (r: PairedDifference, what: string) =>
    `| ${r.dataset} | ${r.set} | ${what} | ${r.seeds.length} | ${signed(r.mean)} | ${signed(r.lower)} to ${signed(r.upper)} | ${r.verdict} |`;
  const entangled = rows.filter((r) => r.comparison === 'entangled - baseline');
  if (entangled.length > 0) {
    lines.push(
      '',
      'AUROC, entangled minus baseline (same seed): mean over seeds, 95% interval of a two-level bootstrap (seeds, then test examples)',
      '',
      '| data set | set | detector (configuration) | seeds | mean | 95% interval | verdict |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...entangled.map((r) => line(r, `${r.detector} (${r.config})`)),
    );
  }
  const within = rows.filter((r) => r.comparison !== 'entangled - baseline');
  if (within.length > 0) {
    lines.push(
      '',
      'AUROC, credibility minus another detector on the same network and examples (same bootstrap)',
      '',
      '| data set | set | comparison (configuration) | seeds | mean | 95% interval | verdict |',
      '| --- | --- | --- | --- | --- | --- | --- |',
      ...within.map((r) => line(r, `${r.comparison} (${r.config})`)),
    );
  }
  return lines.join('\n') + '\n';
}
