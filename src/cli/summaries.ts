/**
 * The commands that read finished work and tabulate it: `snnl summarize` (runs over seeds), `snnl
 * dknn-summary` (Deep k-NN studies, with paired verdicts) and `snnl probe-trend` (probed layers' fall and
 * rise).
 */
import { mkdirSync } from 'node:fs';
import type { Command } from 'commander';
import { InputError } from '../errors.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { summarizeRuns, summaryDocument, unfinishedRuns, writeSummaryTable } from '../experiments/summary.js';
import { findRuns } from '../report/report.js';
import { trendFiles, trendMarkdown, trendRuns } from '../report/trend.js';
import { dknnSummaryCommand } from './dknn.js';

export function registerSummaryCommands(program: Command): void {
  program
    .command('dknn-summary')
    .description('the Deep k-NN studies under a folder side by side: mean and std over seeds, and an AUROC figure')
    .argument('<dir>', 'a folder holding dknn.json files (up to four levels down)')
    .option('--out <dir>', 'write table.md, table.json and auroc.png there')
    .exitOverride()
    .action(async (dir: string, flags: { out?: string }) => {
      process.stdout.write(await dknnSummaryCommand(dir, flags.out));
    });

  program
    .command('summarize')
    .description("a table over seeds of a folder of runs: mean, std and best accuracy, and each layer's SNNL")
    .argument('<dir>', 'a run folder, or a folder of runs (two levels deep)')
    .option('--out <dir>', 'write table.md and table.json there')
    .exitOverride()
    .action((dir: string, flags: { out?: string }) => {
      const runs = findRuns(dir);
      const unfinished = unfinishedRuns(runs);
      if (unfinished.length > 0)
        process.stderr.write(`snnl summarize: left out, not finished: ${unfinished.join(', ')}\n`);
      const rows = summarizeRuns(runs);
      if (rows.length === 0) throw new InputError(dir, 'holds no finished run');
      if (flags.out !== undefined) writeSummaryTable(flags.out, rows);
      process.stdout.write(summaryDocument(rows));
    });

  program
    .command('probe-trend')
    .description("whether each probed layer's SNNL falls and then rises beyond its probe-to-probe noise")
    .argument('<dir>', 'a run folder with probes.jsonl (snnl train --probe-layers), or a folder of them')
    .option('--out <dir>', 'write trend.md and trend.json there')
    .exitOverride()
    .action((dir: string, flags: { out?: string }) => {
      const runs = trendRuns(dir);
      const markdown = trendMarkdown(runs);
      if (flags.out !== undefined) {
        const files = trendFiles(flags.out);
        mkdirSync(flags.out, { recursive: true });
        writeAtomic(files.markdown, markdown);
        writeJsonAtomic(files.json, runs);
      }
      process.stdout.write(markdown);
    });
}
