#!/usr/bin/env node
/**
 * The `snnl` command line.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { BACKENDS } from '../engine/backend.js';
import { DISTANCES } from '../loss/distance.js';
import { PRESETS } from '../loss/presets.js';
import { report } from './errors.js';
import { formatMeasurement, measure, type MeasureFlags } from './measure.js';
import { datasetStatus, formatStatus, verifyAll } from './datasets.js';
import { defaultDataDir } from '../data/datasets.js';

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('snnl')
    .description('The Soft Nearest Neighbor Loss: measure and train class entanglement in representations')
    .version(pkg.version)
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)');

  program
    .command('measure')
    .description('measure the SNNL (entanglement) of embeddings with their class labels')
    .argument('<embeddings>', 'embeddings, one row per example: .npy (float32/float64, any rank), .csv or .json')
    .argument('<labels>', 'integer class labels, one per example: .npy (any int width), .csv or .json')
    .addOption(new Option('--distance <name>', "pairwise distance (default: the preset's)").choices([...DISTANCES]))
    .addOption(
      new Option('--preset <name>', 'formula of a known implementation').choices([...PRESETS]).default('stable'),
    )
    .option('--temperature <T>', "temperature above 0, or 'optimal' for the one that minimizes the loss", '1')
    .option('--block-size <rows>', 'compute in blocks of this many rows (memory grows with rows x block)')
    .addOption(new Option('--backend <name>', 'compute backend').choices([...BACKENDS]).env('SNNL_BACKEND'))
    .option('--json', 'print the result as JSON')
    .exitOverride()
    .action(async (embeddings: string, labels: string, flags: MeasureFlags) => {
      const result = await measure(embeddings, labels, flags);
      process.stdout.write((flags.json ? JSON.stringify(result, null, 2) : formatMeasurement(result)) + '\n');
    });

  const datasets = program
    .command('datasets')
    .description('list the data sets: available or not, where from, sizes, and how to provide a missing one')
    .option('--data-dir <dir>', 'folder of user-supplied data sets (default: SNNL_DATA_DIR or ~/.snnl/data)')
    .option('--json', 'print the list as JSON')
    .exitOverride()
    .action((flags: { dataDir?: string; json?: boolean }) => {
      const dir = flags.dataDir ?? defaultDataDir();
      const statuses = datasetStatus(dir);
      process.stdout.write((flags.json ? JSON.stringify(statuses, null, 2) : formatStatus(statuses, dir)) + '\n');
    });
  datasets
    .command('verify')
    .description('check sizes and checksums where known, and decode every available data set')
    .option('--data-dir <dir>', 'folder of user-supplied data sets')
    .exitOverride()
    .action((flags: { dataDir?: string }, command: Command) => {
      const parent = command.parent?.opts() as { dataDir?: string } | undefined;
      const result = verifyAll(flags.dataDir ?? parent?.dataDir ?? defaultDataDir());
      process.stdout.write(result.text + '\n');
      // A damaged or wrong file is a problem with the user's input: exit 2, as for any bad input.
      if (!result.ok) process.exitCode = 2;
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    // An action may have set a failing exit code of its own (verify finding a damaged file).
    return Number(process.exitCode ?? 0);
  } catch (error) {
    return report(error);
  }
}

process.exitCode = await main(process.argv);
