/**
 * `snnl train`, `snnl evaluate` and `snnl export`: a training run from flags (or resumed from its
 * folder), the accuracy and per-layer SNNL of a saved run, and its network as a tfjs model.json.
 */
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { epochOrder } from '../data/batches.js';
import { defaultDataDir, getDatasetSpec } from '../data/datasets.js';
import { describeBackend, useBackend } from '../engine/backend.js';
import { checkOneOf, InputError } from '../errors.js';
import { checkImageShape } from '../data/reshape.js';
import { buildNetwork, checkInputShape } from '../models/models.js';
import { resolveProbeLayers } from '../training/probes.js';
import { measureOptions, type TrainConfig } from '../training/config.js';
import { entanglement, evaluationSample, testScore } from '../training/evaluate.js';
import { temperatureAt, type EpochMetrics } from '../training/loop.js';
import { formatSeconds } from '../format.js';
import { formatEpoch, trainRun } from '../training/run.js';
import { createRun, loadTrainedNetwork, readStoredConfig, runFiles } from '../training/run-store.js';
import { configFromFlags, type TrainFlags } from './train-flags.js';
import { fileSystem } from '../io/file-system.js';
import { unboundedWhenEntangling } from '../training/entangling.js';

export function defaultRunDir(config: TrainConfig): string {
  return join('runs', `${config.dataset}-${config.model}-a${config.factor}-T${config.temperature}-s${config.seed}`);
}

/** Checks everything about a new run that can be checked before any work starts. */
export function checkRun(config: TrainConfig, out: string): void {
  const spec = getDatasetSpec(config.dataset);
  if (config.inputShape) checkImageShape(spec.name, spec.imageShape, config.inputShape, '--input-shape');
  const shape = config.inputShape ?? spec.imageShape;
  checkInputShape(config.model, shape);
  if (config.probe) {
    const net = buildNetwork(config.model, shape, spec.classes, config.seed, config.modelOptions);
    try {
      resolveProbeLayers(net, config.probe.layers);
    } finally {
      net.model.dispose();
    }
  }
  const location = spec.locate(config.dataDir ?? defaultDataDir());
  if (!location.available)
    throw new InputError('--dataset', `${spec.name} is not available (looked in ${location.where}): ${location.howTo}`);
  if (existsSync(out) && !statSync(out).isDirectory()) throw new InputError('--out', `${out} is a file, not a folder`);
  if (existsSync(runFiles(out).config)) {
    throw new InputError(
      '--out',
      `${out} already holds a run; resume it with snnl train --resume ${out}, or choose another --out`,
    );
  }
}

export async function trainCommand(
  flags: TrainFlags & { resume?: string; out?: string; backend?: string; quiet?: boolean },
) {
  const started = performance.now();
  let dir: string;
  if (flags.resume !== undefined) {
    const given = Object.entries(flags).filter(
      ([k, v]) => v !== undefined && !['resume', 'backend', 'quiet'].includes(k),
    );
    if (given.length > 0) {
      throw new InputError(
        '--resume',
        `a resumed run keeps its own settings; drop ${given.map(([k]) => '--' + k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())).join(', ')}`,
      );
    }
    dir = flags.resume;
    readStoredConfig(dir);
    await useBackend(flags.backend);
  } else {
    const config = configFromFlags(flags);
    const unbounded = unboundedWhenEntangling(config.preset, config.distance, config.factor);
    if (unbounded !== undefined) process.stderr.write(`snnl: warning: ${unbounded}\n`);
    dir = flags.out ?? defaultRunDir(config);
    const backend = await useBackend(flags.backend);
    checkRun(config, dir);
    createRun(dir, config, backend);
  }
  const { config } = readStoredConfig(dir);
  process.stderr.write(
    `snnl train: ${config.model} on ${config.dataset}, factor ${config.factor}, temperature ${config.temperature}, ` +
      `${config.epochs} epochs, batch ${config.batchSize}, seed ${config.seed}, backend ${describeBackend()}\n  run folder: ${dir}\n`,
  );
  const history = await trainRun(dir, describeBackend(), { quiet: flags.quiet ?? false });
  return { dir, history, backend: describeBackend(), seconds: (performance.now() - started) / 1000 };
}

export function formatTrainResult(result: {
  dir: string;
  history: EpochMetrics[];
  backend: string;
  seconds: number;
}): string {
  const last = result.history.at(-1);
  const lines = [`finished in ${formatSeconds(result.seconds)}: ${result.dir}`];
  if (last) lines.push(formatEpoch(last, result.backend));
  const probes = existsSync(runFiles(result.dir).probes) ? ', probes.jsonl (one line per probe)' : '';
  lines.push(`files: config.json, metrics.jsonl (one line per epoch), summary.json, checkpoint.bin${probes}`);
  return lines.join('\n');
}

export interface EvaluateResult {
  dir: string;
  protocol: 'test' | 'seed-readme';
  epoch: number;
  accuracy: number | null;
  examples: number;
  entanglement?: Record<string, { temperature: number; loss: number; optimalTemperature: number; optimalLoss: number }>;
  backend: string;
}

export async function evaluateCommand(
  dir: string,
  flags: { protocol?: string; backend?: string },
): Promise<EvaluateResult> {
  const protocol = checkOneOf(flags.protocol ?? 'test', ['test', 'seed-readme'] as const, '--protocol');
  readStoredConfig(dir);
  const backend = await useBackend(flags.backend);
  const { net, dataset, stored, epoch } = loadTrainedNetwork(dir);
  const { config } = stored;
  if (protocol === 'seed-readme') {
    // The published table's protocol: the last shuffled batch of the TRAINING set, as large as the test set.
    const batches = epochOrder(dataset.train.count, {
      batchSize: dataset.test.count,
      seed: config.seed,
      epoch: epoch - 1,
      keepPartial: true,
    });
    const last = batches.at(-1)!;
    const score = testScore(net, dataset, last, 'train');
    net.model.dispose();
    return { dir, protocol, epoch, accuracy: score.accuracy, examples: last.length, backend };
  }
  const score = testScore(net, dataset);
  const t = temperatureAt(config.temperature, epoch - 1);
  const layers = entanglement(
    net,
    dataset,
    measureOptions(config),
    t === 'optimal' ? 1 : t,
    evaluationSample(dataset, config.evalSample, config.seed),
  );
  net.model.dispose();
  return {
    dir,
    protocol,
    epoch,
    accuracy: score.accuracy,
    examples: dataset.test.count,
    entanglement: layers,
    backend,
  };
}

export function formatEvaluation(r: EvaluateResult): string {
  const what =
    r.protocol === 'test'
      ? `the test split (${r.examples} images)`
      : `the last shuffled training batch (${r.examples} images; the published table's protocol)`;
  const lines = [`${r.dir} after epoch ${r.epoch}, on ${what}, backend ${r.backend}`];
  if (r.accuracy !== null) lines.push(`  accuracy ${(100 * r.accuracy).toFixed(2)}%`);
  for (const [name, e] of Object.entries(r.entanglement ?? {})) {
    lines.push(
      `  SNNL ${name.padEnd(10)} ${e.loss.toFixed(4)} at T=${e.temperature.toPrecision(3)}, ${e.optimalLoss.toFixed(4)} at the optimal T=${e.optimalTemperature.toPrecision(3)}`,
    );
  }
  return lines.join('\n');
}

export interface ExportResult {
  dir: string;
  out: string;
  epoch: number;
  /** The model's outputs in order: the hidden layers, then the logits. */
  outputs: string[];
}

/**
 * `snnl export RUN [--out DIR]`: the run's network at its last finished epoch as tfjs's model.json and
 * weights.bin (default RUN/model), for tf.loadLayersModel('file://DIR/model.json').
 */
export async function exportCommand(dir: string, flags: { out?: string; backend?: string }): Promise<ExportResult> {
  readStoredConfig(dir);
  await useBackend(flags.backend);
  const { net, epoch } = loadTrainedNetwork(dir);
  const out = flags.out ?? join(dir, 'model');
  try {
    await net.model.save(fileSystem(out));
  } finally {
    net.model.dispose();
  }
  const outputs = [...net.hiddenLayers, net.kind === 'autoencoder' ? 'reconstruction logits' : 'logits'];
  return { dir, out, epoch, outputs };
}

export function formatExport(result: ExportResult): string {
  return [
    `exported ${result.dir} (epoch ${result.epoch}) to ${join(result.out, 'model.json')} and weights.bin`,
    `outputs, in order: ${result.outputs.join(', ')}`,
    `load it: await tf.loadLayersModel('file://${join(result.out, 'model.json')}') after import 'snnl'`,
  ].join('\n');
}
