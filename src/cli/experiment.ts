/**
 * `snnl quickstart` (npm start) and `snnl report DIR`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { describeBackend, useBackend } from '../engine/backend.js';
import { InputError } from '../errors.js';
import { reproduce, REPRODUCIBLE_DATASETS, tableMarkdown } from '../experiments/reproduce.js';
import { writeAtomic } from '../io/atomic.js';
import { quickstart } from '../experiments/quickstart.js';
import { runToy, TOY_DEFAULTS } from '../experiments/toy.js';
import { writeToyReport } from '../report/toy.js';
import { cellText } from '../report/html.js';
import { buildReport, resultsTable } from '../report/report.js';
import { parseNumberFlag } from './train-flags.js';
import { formatSeconds } from '../format.js';
import { formatTable } from '../format.js';

const log = (line: string) => process.stderr.write(line + '\n');
const whole = (n: number) => Number.isInteger(n) && n >= 1;
/** --train-subset of the experiments: at least one batch of 128. */
const trainSubsetFlag = (value: string | undefined) =>
  parseNumberFlag(value, '--train-subset', (n) => whole(n) && n >= 128, 'a whole number of at least 128');

export async function quickstartCommand(flags: {
  out: string;
  epochs: string;
  trainSubset?: string;
  backend?: string;
}): Promise<string> {
  const epochs = parseNumberFlag(flags.epochs, '--epochs', whole, 'a whole number of epochs above 0')!;
  const trainSubset = trainSubsetFlag(flags.trainSubset);
  await useBackend(flags.backend);
  const started = performance.now();
  log(
    `snnl quickstart: MNIST, MLP 784-500-500-10, baseline vs SNNL (cosine distance, T=0.1, factor +10 and -10), ${epochs} epochs each, backend ${describeBackend()}`,
  );
  const outcomes = await quickstart(
    { out: flags.out, epochs, ...(trainSubset ? { trainSubset } : {}) },
    describeBackend(),
    log,
  );
  log('writing the report');
  const report = await buildReport(flags.out, {
    title: 'snnl quickstart: SNNL on MNIST (MLP 784-500-500-10)',
    points: 500,
    log,
  });
  const table = resultsTable(outcomes.map((o) => ({ label: o.name, dir: o.dir, history: o.history })));
  return [
    '',
    formatTable([table.header, ...table.rows.map((r) => r.map(cellText))]),
    '',
    `finished in ${formatSeconds((performance.now() - started) / 1000)}; report: ${report}`,
  ].join('\n');
}

/** --points: test images per UMAP picture of a report. */
const pointsFlag = (value: string) =>
  parseNumberFlag(value, '--points', (n) => whole(n) && n >= 20, 'a whole number of at least 20')!;

export async function reportCommand(dir: string, flags: { points: string; backend?: string }): Promise<string> {
  const points = pointsFlag(flags.points);
  await useBackend(flags.backend);
  const path = await buildReport(dir, { points, log });
  return `report: ${path}`;
}

export async function toyCommand(flags: {
  out: string;
  classes: string;
  steps: string;
  seed: string;
  /** The toy is tiny: cpu unless asked. */
  backend?: string;
}): Promise<string> {
  const classes = parseNumberFlag(
    flags.classes,
    '--classes',
    (n) => whole(n) && n >= 2 && n <= 10,
    'a whole number from 2 to 10',
  )!;
  const steps = parseNumberFlag(flags.steps, '--steps', whole, 'a whole number of steps above 0')!;
  const seed = parseNumberFlag(flags.seed, '--seed', (n) => Number.isInteger(n) && n >= 0, 'a whole number from 0')!;
  await useBackend(flags.backend ?? 'cpu');
  const frameSteps = [0, Math.round(steps / 20), Math.round(steps / 4), steps].filter(
    (s, k, all) => all.indexOf(s) === k,
  );
  const frames = runToy({ ...TOY_DEFAULTS, classes, steps, seed, frames: frameSteps });
  const path = await writeToyReport(flags.out, frames);
  const lines = frames.map(
    (f) => `${f.direction.padEnd(11)} step ${String(f.step).padStart(4)}: SNNL ${f.loss.toFixed(3)}`,
  );
  return [...lines, `figure: ${path}`].join('\n');
}

/** The wall time of finished runs, from their summary.json (0 where it is missing). */
/** The runs' training and wall time summed from their summary.json files. */
function runSeconds(outcomes: Array<{ dir: string }>): { train: number; wall: number } {
  return outcomes.reduce(
    (total, o) => {
      const path = join(o.dir, 'summary.json');
      if (!existsSync(path)) return total;
      const summary = JSON.parse(readFileSync(path, 'utf8')) as { wallSeconds?: number; trainSeconds?: number };
      return { train: total.train + (summary.trainSeconds ?? 0), wall: total.wall + (summary.wallSeconds ?? 0) };
    },
    { train: 0, wall: 0 },
  );
}

export async function reproduceCommand(flags: {
  datasets: string;
  seeds: string;
  epochs?: string;
  out: string;
  dataDir?: string;
  trainSubset?: string;
  evalSample?: string;
  backend?: string;
  tableOnly?: boolean;
  points: string;
}): Promise<string> {
  const datasets = flags.datasets
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean);
  for (const d of datasets) {
    if (!(REPRODUCIBLE_DATASETS as readonly string[]).includes(d)) {
      throw new InputError(
        '--datasets',
        `'${d}' is not in the published table; expected some of ${REPRODUCIBLE_DATASETS.join(', ')}`,
      );
    }
  }
  const seeds = flags.seeds
    .split(',')
    .map((s) => parseNumberFlag(s, '--seeds', (n) => Number.isInteger(n) && n >= 0, 'whole numbers, comma-separated')!);
  if (seeds.length === 0) throw new InputError('--seeds', 'give at least one seed');
  const epochs = parseNumberFlag(flags.epochs, '--epochs', whole, 'a whole number of epochs above 0');
  const trainSubset = trainSubsetFlag(flags.trainSubset);
  const evalSample = parseNumberFlag(
    flags.evalSample,
    '--eval-sample',
    (n) => whole(n) && n >= 2,
    'a whole number of at least 2',
  );
  const points = pointsFlag(flags.points);
  await useBackend(flags.backend);
  const started = performance.now();
  log(
    `snnl reproduce: ${datasets.join(', ')}; seeds ${seeds.join(', ')}; 5 configurations each; backend ${describeBackend()}; folder ${flags.out}`,
  );
  const options = {
    out: flags.out,
    datasets,
    seeds,
    ...(epochs ? { epochs } : {}),
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    ...(trainSubset ? { trainSubset } : {}),
    ...(evalSample ? { evalSample } : {}),
    ...(flags.tableOnly ? { tableOnly: true } : {}),
  };
  const result = await reproduce(options, describeBackend(), log);
  if (result.cells.length === 0)
    throw new InputError('--datasets', `none of ${datasets.join(', ')} is available; see snnl datasets`);
  const seconds = (performance.now() - started) / 1000;
  const context = [
    `Command: snnl reproduce --datasets ${datasets.join(',')} --seeds ${seeds.join(',')}${epochs ? ` --epochs ${epochs}` : ''}${trainSubset ? ` --train-subset ${trainSubset}` : ''}`,
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown CPU'}), backend ${describeBackend()}, wall time of this invocation ${formatSeconds(seconds)}; the runs in this table took ${formatSeconds(runSeconds(result.outcomes).train)} of training and ${formatSeconds(runSeconds(result.outcomes).wall)} wall time in all (training, evaluation and measurements; their summary.json).`,
    flags.tableOnly
      ? `Written with --table-only from the ${result.outcomes.length} runs finished so far; rerun without it to train the rest.`
      : '',
    trainSubset
      ? `Trained on ${trainSubset} examples only: a quick look, not comparable with the published table.`
      : '',
    ...result.skipped.map((s) => `Skipped ${s.dataset}: not available (${s.why}).`),
  ]
    .filter(Boolean)
    .join('\n\n');
  const markdown = tableMarkdown(result.cells, context);
  writeAtomic(join(flags.out, 'table.md'), markdown);
  writeAtomic(
    join(flags.out, 'table.json'),
    JSON.stringify({ context, cells: result.cells, skipped: result.skipped }, null, 2) + '\n',
  );
  log('writing the report');
  const report = await buildReport(flags.out, { title: 'SNNL results table, reproduced', points, log });
  return `${markdown}\nwritten: ${join(flags.out, 'table.md')}, ${join(flags.out, 'table.json')}, ${report}`;
}
