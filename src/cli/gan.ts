/**
 * `snnl gan`: the real-vs-generated study (src/experiments/gan.ts), new or resumed, then its report;
 * `snnl gan-report DIR` redraws the report; `snnl gan-summary DIR...` puts several seeds side by side.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { describeBackend, useBackend } from '../engine/backend.js';
import { checkOneOf, InputError } from '../errors.js';
import { formatSeconds } from '../format.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { GENERATOR_KINDS } from '../models/gan.js';
import {
  checkGanConfig,
  createGanStudy,
  GAN_DEFAULTS,
  POSTER_GAN,
  readGanConfig,
  readGanRecords,
  runGanStudy,
  type GanConfig,
  type GanRecord,
} from '../experiments/gan.js';
import { mean, std } from '../experiments/summary.js';
import type { DistanceName } from '../loss/distance.js';
import { buildGanReport, settingsOf, valueAt } from '../report/gan.js';
import { parseNumberFlag } from './train-flags.js';

export interface GanFlags {
  dataset?: string;
  dataDir?: string;
  steps?: string;
  batchSize?: string;
  lr?: string;
  beta1?: string;
  codeSize?: string;
  generator?: string;
  measureEvery?: string;
  probeSize?: string;
  temperatures?: string;
  distance?: string;
  classifier?: string;
  snapshots?: string;
  seed?: string;
  tsne?: string;
  out?: string;
  resume?: string;
  backend?: string;
  quiet?: boolean;
}

const whole = (from: number) => (n: number) => Number.isInteger(n) && n >= from;

function list(value: string | undefined, flag: string, check: (n: number) => boolean, expected: string) {
  return value
    ?.split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((s) => parseNumberFlag(s, flag, check, expected)!);
}

/** The study's settings from the flags, checked before any work. */
export function ganConfigFromFlags(flags: GanFlags): GanConfig {
  const steps =
    parseNumberFlag(flags.steps, '--steps', whole(1), 'a whole number of steps above 0') ?? GAN_DEFAULTS.steps;
  const config: GanConfig = {
    dataset: flags.dataset ?? GAN_DEFAULTS.dataset,
    ...(flags.dataDir ? { dataDir: flags.dataDir } : {}),
    steps,
    batchSize:
      parseNumberFlag(flags.batchSize, '--batch-size', whole(2), 'a whole number of at least 2') ??
      GAN_DEFAULTS.batchSize,
    lr: parseNumberFlag(flags.lr, '--lr', (n) => n > 0, 'a learning rate above 0') ?? GAN_DEFAULTS.lr,
    beta1:
      parseNumberFlag(flags.beta1, '--beta1', (n) => n >= 0 && n < 1, 'a number from 0 to below 1') ??
      GAN_DEFAULTS.beta1,
    codeSize:
      parseNumberFlag(flags.codeSize, '--code-size', whole(1), 'a whole number above 0') ?? GAN_DEFAULTS.codeSize,
    generator: checkOneOf(flags.generator ?? GAN_DEFAULTS.generator, GENERATOR_KINDS, '--generator'),
    measureEvery:
      parseNumberFlag(flags.measureEvery, '--measure-every', whole(1), 'a whole number of steps above 0') ??
      GAN_DEFAULTS.measureEvery,
    probeSize:
      parseNumberFlag(flags.probeSize, '--probe-size', whole(2), 'a whole number of at least 2') ??
      GAN_DEFAULTS.probeSize,
    temperatures:
      list(flags.temperatures, '--temperatures', (n) => n > 0, 'temperatures above 0, comma-separated') ??
      GAN_DEFAULTS.temperatures,
    distance: (flags.distance ?? GAN_DEFAULTS.distance) as DistanceName,
    ...(flags.classifier !== undefined ? { classifier: flags.classifier } : {}),
    snapshots: list(flags.snapshots, '--snapshots', whole(0), 'steps from 0, comma-separated') ??
      // The poster's steps within the study, and its last step.
      [...new Set([...GAN_DEFAULTS.snapshots.filter((s) => s <= steps), steps])],
    seed: parseNumberFlag(flags.seed, '--seed', whole(0), 'a whole number from 0') ?? GAN_DEFAULTS.seed,
  };
  return checkGanConfig(config);
}

export function defaultGanDir(config: GanConfig): string {
  return join('runs', `gan-${config.dataset}-s${config.seed}`);
}

export async function ganCommand(flags: GanFlags, log: (line: string) => void) {
  const started = performance.now();
  let dir: string;
  if (flags.resume !== undefined) {
    const given = Object.entries(flags).filter(
      ([k, v]) => v !== undefined && !['resume', 'backend', 'quiet', 'tsne'].includes(k),
    );
    if (given.length > 0) {
      throw new InputError(
        '--resume',
        `a resumed study keeps its own settings; drop ${given.map(([k]) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`,
      );
    }
    dir = flags.resume;
    checkGanConfig(readGanConfig(dir).config);
    await useBackend(flags.backend);
  } else {
    const config = ganConfigFromFlags(flags);
    dir = flags.out ?? defaultGanDir(config);
    if (existsSync(join(dir, 'config.json'))) {
      throw new InputError(
        '--out',
        `${dir} already holds a study; resume it with snnl gan --resume ${dir}, or choose another --out`,
      );
    }
    createGanStudy(dir, config, await useBackend(flags.backend));
  }
  const { config } = readGanConfig(dir);
  log(
    `snnl gan: DCGAN on ${config.dataset}, ${config.steps} steps, batch ${config.batchSize}, seed ${config.seed}, ` +
      `measured every ${config.measureEvery} steps in ${config.classifier ? 'pixels, the discriminator and the classifier' : 'pixels and the discriminator'}; backend ${describeBackend()}\n  study folder: ${dir}`,
  );
  const records = await runGanStudy(dir, { quiet: flags.quiet ?? false, log });
  log('drawing the report (t-SNE of the snapshots)');
  const report = await buildGanReport(dir, { ...(flags.tsne ? { tsne: flags.tsne } : {}), log });
  return { dir, records, report, seconds: (performance.now() - started) / 1000 };
}

/** The records at the poster's steps as a table: one row per representation, at the optimal temperature. */
export function formatGan(result: { dir: string; records: GanRecord[]; report: string; seconds: number }): string {
  const lines = [`finished in ${formatSeconds(result.seconds)}: ${result.dir}`];
  const last = result.records.at(-1)!;
  lines.push(`SNNL of real vs generated at the optimal temperature (ceiling ${last.ceiling.toFixed(4)}):`);
  const steps = [...new Set([...POSTER_GAN.map((p) => p.step), last.step])].filter((s) =>
    result.records.some((r) => r.step === s),
  );
  const names = Object.keys(last.representations);
  const width = Math.max(14, ...names.map((n) => n.length));
  lines.push(`  ${'step'.padEnd(width)} ${steps.map((s) => String(s).padStart(8)).join(' ')}`);
  const poster = steps.map((s) => POSTER_GAN.find((p) => p.step === s)?.snnl.toFixed(4) ?? '-');
  lines.push(`  ${'poster'.padEnd(width)} ${poster.map((v) => v.padStart(8)).join(' ')}`);
  for (const name of names) {
    const values = steps.map((s) =>
      valueAt(
        result.records.find((r) => r.step === s)!,
        name,
        'optimal',
      )!.toFixed(4),
    );
    lines.push(`  ${name.padEnd(width)} ${values.map((v) => v.padStart(8)).join(' ')}`);
  }
  lines.push(
    `report: ${result.report}; files: config.json, metrics.jsonl, summary.json, checkpoint.bin, snapshots/, *.png`,
  );
  return lines.join('\n');
}

/**
 * Several studies (seeds) side by side: for each representation and temperature setting, the mean and
 * standard deviation over the studies at the poster's steps. Writes table.md and table.json to `out`.
 */
export function ganSummaryCommand(dirs: string[], out?: string): string {
  if (dirs.length === 0) throw new InputError('dirs', 'name at least one study folder');
  const studies = dirs.map((dir) => ({ dir, stored: readGanConfig(dir), records: readGanRecords(dir) }));
  const datasets = new Set(studies.map((s) => s.stored.config.dataset));
  const first = studies[0]!.records[0];
  if (!first) throw new InputError(dirs[0]!, 'the study has no measurement yet');
  const settings = settingsOf(first);
  const rows: Array<{
    representation: string;
    setting: string;
    values: Array<{ mean: number; std: number; n: number } | null>;
  }> = [];
  for (const representation of Object.keys(first.representations)) {
    for (const setting of settings) {
      rows.push({
        representation,
        setting,
        values: POSTER_GAN.map((p) => {
          const found = studies
            .map((s) => s.records.find((r) => r.step === p.step))
            .map((r) => (r ? valueAt(r, representation, setting) : undefined))
            .filter((v): v is number => v !== undefined);
          return found.length > 0 ? { mean: mean(found), std: std(found), n: found.length } : null;
        }),
      });
    }
  }
  const seeds = studies.map((s) => s.stored.config.seed);
  const md = [
    `SNNL of real vs generated (${[...datasets].join(', ')}; seeds ${seeds.join(', ')}): mean +- std over the studies; ceiling ${first.ceiling.toFixed(4)}.`,
    '',
    `| representation | temperature | ${POSTER_GAN.map((p) => `step ${p.step}`).join(' | ')} |`,
    `|---|---|${POSTER_GAN.map(() => '---').join('|')}|`,
    `| poster | ? | ${POSTER_GAN.map((p) => p.snnl.toFixed(4)).join(' | ')} |`,
    ...rows.map(
      (r) =>
        `| ${r.representation} | ${r.setting === 'optimal' ? 'optimal' : r.setting} | ${r.values
          .map((v) => (v ? `${v.mean.toFixed(4)} +- ${v.std.toFixed(4)}` : '-'))
          .join(' | ')} |`,
    ),
    '',
  ].join('\n');
  if (out !== undefined) {
    mkdirSync(out, { recursive: true });
    writeAtomic(join(out, 'table.md'), md);
    writeJsonAtomic(join(out, 'table.json'), { seeds, datasets: [...datasets], poster: POSTER_GAN, rows });
  }
  return md;
}
