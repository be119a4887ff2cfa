/**
 * The committed results agree with the run files behind them: each table recomputed from its runs'
 * config.json, metrics.jsonl and protocol.json, and no committed file over 2 MB.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { summarizeRuns, summaryDocument } from '../src/experiments/summary.js';
import { tableCells, tableMarkdown } from '../src/experiments/reproduce.js';
import { findRuns } from '../src/report/report.js';
import { readHistory } from '../src/training/run-store.js';
import { trendMarkdown, trendRuns } from '../src/report/trend.js';
import { dknnSummaryMarkdown, findStudies, readStudy, summarizeStudies } from '../src/experiments/dknn-summary.js';
import { pairedDifferences, pairedMarkdown } from '../src/experiments/dknn-paired.js';

const ROOT = join(import.meta.dirname, '..');
const RESULTS = join(ROOT, 'results');

describe('committed results', () => {
  it('reproduction-10epoch: table.json and table.md follow from its 50 runs', () => {
    const dir = join(RESULTS, 'reproduction-10epoch');
    const committed = JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')) as {
      context: string;
      cells: unknown[];
    };
    const outcomes = findRuns(dir).map((run) => ({
      name: run.slice(dir.length + 1),
      dir: run,
      history: readHistory(run),
      status: 'done before' as const,
    }));
    expect(outcomes).toHaveLength(50);
    // In the command's order of seeds, as the table was written.
    const seeds = [1234, 42, 73, 1024, 86400];
    const seedOf = (name: string) => seeds.indexOf(Number(name.split('-s').pop()));
    outcomes.sort((a, b) => seedOf(a.name) - seedOf(b.name));
    const cells = ['mnist', 'fashion-mnist'].flatMap((d) => tableCells(d, outcomes));
    expect(cells).toEqual(committed.cells);
    expect(tableMarkdown(cells, committed.context)).toBe(readFileSync(join(dir, 'table.md'), 'utf8'));
  });

  it('every study folder with a summarize table (table.json of rows) follows from its runs', () => {
    const folders = ['entangling-reference']
      .map((f) => join(RESULTS, f))
      .filter((f) => existsSync(join(f, 'table.json')));
    for (const dir of folders) {
      const committed = JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')) as { rows: unknown[] };
      const rows = summarizeRuns(findRuns(dir));
      expect(JSON.parse(JSON.stringify(rows))).toEqual(committed.rows);
      expect(summaryDocument(rows)).toBe(readFileSync(join(dir, 'table.md'), 'utf8'));
    }
  });

  it('resnet-overfit: trend.md and trend.json follow from its runs (snnl probe-trend)', () => {
    const dir = join(RESULTS, 'resnet-overfit', 'fashion-mnist');
    const runs = trendRuns(dir);
    expect(runs.map((r) => r.run)).toEqual(['s1234', 's42', 's73']);
    expect(trendMarkdown(runs)).toBe(readFileSync(join(dir, 'trend.md'), 'utf8'));
    expect(JSON.parse(JSON.stringify(runs))).toEqual(JSON.parse(readFileSync(join(dir, 'trend.json'), 'utf8')));
  });

  it('dknn-reference: table.md and table.json follow from its dknn.json files (snnl dknn-summary)', () => {
    const dir = join(RESULTS, 'dknn-reference');
    if (!existsSync(join(dir, 'table.md'))) return;
    const studies = findStudies(dir).map(readStudy);
    const rows = summarizeStudies(studies);
    const paired = pairedDifferences(studies);
    expect(dknnSummaryMarkdown(rows) + pairedMarkdown(paired)).toBe(readFileSync(join(dir, 'table.md'), 'utf8'));
    expect(JSON.parse(JSON.stringify({ rows, paired }))).toEqual(
      JSON.parse(readFileSync(join(dir, 'table.json'), 'utf8')),
    );
  });

  it('no committed file is over 2 MB', () => {
    const files = spawnSync('git', ['ls-files'], { cwd: ROOT, encoding: 'utf8' });
    // Outside a git checkout (a packed copy) there is nothing to check.
    if (files.status !== 0) return;
    const large = files.stdout
      .split('\n')
      .filter((f) => f && existsSync(join(ROOT, f)) && statSync(join(ROOT, f)).size > 2 * 1024 * 1024);
    expect(large).toEqual([]);
  });
});
