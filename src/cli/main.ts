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

  return program;
}

export async function main(argv: string[]): Promise<number> {
  try {
    await buildProgram().parseAsync(argv);
    return 0;
  } catch (error) {
    return report(error);
  }
}

process.exitCode = await main(process.argv);
