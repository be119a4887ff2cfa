/**
 * Running a set of training runs in one folder, resumably: a finished run is skipped, an interrupted
 * one resumes from its checkpoint, a new one starts.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { TrainConfig } from '../training/config.js';
import { InputError } from '../errors.js';
import type { EpochMetrics } from '../training/loop.js';
import { trainRun } from '../training/run.js';
import { createRun, readHistory, readStoredConfig, runFiles } from '../training/run-store.js';

export interface PlannedRun {
  name: string;
  config: TrainConfig;
}

export interface RunOutcome {
  name: string;
  dir: string;
  history: EpochMetrics[];
  status: 'done before' | 'resumed' | 'trained';
}

/**
 * Runs the plan in `root`. With `trainMissing: false` nothing is trained: finished runs are returned,
 * and the others are named in the log and left out.
 */
export async function runAll(
  root: string,
  plan: PlannedRun[],
  backend: string,
  log: (line: string) => void,
  { trainMissing = true }: { trainMissing?: boolean } = {},
): Promise<RunOutcome[]> {
  const outcomes: RunOutcome[] = [];
  for (const [k, { name, config }] of plan.entries()) {
    const dir = join(root, name);
    let status: RunOutcome['status'] = 'trained';
    const finished = existsSync(runFiles(dir).config) && readHistory(dir).length >= config.epochs;
    if (!trainMissing && !finished) {
      log(`[${k + 1}/${plan.length}] ${name}: not finished, left out`);
      continue;
    }
    if (existsSync(runFiles(dir).config)) {
      const stored = readStoredConfig(dir).config;
      if (JSON.stringify(stored) !== JSON.stringify(config)) {
        throw new InputError('out', `${dir} holds a run with other settings; remove it or choose another folder`);
      }
      const history = readHistory(dir);
      if (history.length >= config.epochs) {
        log(`[${k + 1}/${plan.length}] ${name}: finished before, skipped`);
        outcomes.push({ name, dir, history, status: 'done before' });
        continue;
      }
      status = 'resumed';
    } else {
      createRun(dir, config, backend);
    }
    log(
      `[${k + 1}/${plan.length}] ${name}: ${status === 'resumed' ? 'resuming' : 'training'} (${config.model} on ${config.dataset}, factor ${config.factor}, T ${config.temperature}, seed ${config.seed})`,
    );
    const history = await trainRun(dir, backend, { log });
    outcomes.push({ name, dir, history, status });
  }
  return outcomes;
}
