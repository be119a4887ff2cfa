/**
 * A stored run trained by the loop: the run folder (src/training/run-store.ts) wrapped around
 * `trainLoop`, with the test score and per-layer entanglement measured after every epoch, a checkpoint
 * after every epoch, and a progress bar. `snnl train`, `snnl quickstart` and `snnl reproduce` use it.
 */
import { existsSync } from 'node:fs';
import { epochOrder, gatherBatch } from '../data/batches.js';
import { measureOptions } from './config.js';
import { entanglement, evaluationSample, normalizationFor, testScore } from './evaluate.js';
import { loopSettings, trainLoop, type BatchSource, type EpochMetrics } from './loop.js';
import { FusedAdamOptimizer } from './optimizer.js';
import { ProgressBar } from './progress.js';
import type { Dataset } from '../data/datasets.js';
import type { Network } from '../models/models.js';
import type { TrainConfig } from './config.js';
import { LayerProbe, probeBatches, readProbes, resolveProbeLayers, writeProbes } from './probes.js';
import { readStoredConfig, restoreRunState, runFiles, runParts, saveRunState, writeSummary } from './run-store.js';

export interface TrainRunOptions {
  /** Print nothing (tests). */
  quiet?: boolean;
  /** Called after each epoch with its metrics (a report, a test). */
  onEpoch?: (metrics: EpochMetrics) => void;
  /** Stop at this batch (0-based) of this epoch (1-based), as a killed process would (tests of resuming). */
  stopAt?: { epoch: number; batch: number };
  log?: (line: string) => void;
}

/**
 * Trains the run in `dir` from its config.json, resuming from its checkpoint when there is one.
 * Returns the metrics of every epoch.
 */
export async function trainRun(dir: string, backend: string, options: TrainRunOptions = {}): Promise<EpochMetrics[]> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const { config } = readStoredConfig(dir);
  const { dataset, net } = runParts(config);
  const settings = loopSettings(config, net);
  const optimizer = new FusedAdamOptimizer(config.lr);
  let probes: ReturnType<typeof startProbes>;
  try {
    const state = await restoreRunState(dir, net, config.model, optimizer, settings.layers.length);
    if (state) log(`resuming ${dir} after epoch ${state.epoch} of ${config.epochs}`);
    const norm = normalizationFor(net, dataset);
    const order = (epoch: number) =>
      epochOrder(dataset.train.count, { batchSize: config.batchSize, seed: config.seed, epoch });
    const data: BatchSource = {
      classes: dataset.classes,
      // Full batches only (epochOrder drops the last, smaller one): no second shuffle to count them.
      batchCount: () => Math.floor(dataset.train.count / config.batchSize),
      *batches(epoch) {
        for (const indices of order(epoch)) yield gatherBatch(dataset.train, dataset.imageShape, norm, indices);
      },
    };
    const sample = evaluationSample(dataset, config.evalSample, config.seed);
    const testSample =
      config.testSubset !== undefined ? evaluationSample(dataset, config.testSubset, config.seed) : undefined;
    probes = startProbes(dir, config, net, dataset, state?.epoch ?? 0);
    let bar: ProgressBar | undefined;
    let epochStarted = performance.now();
    const history = await trainLoop({
      network: net,
      optimizer,
      data,
      settings,
      ...(state ? { state } : {}),
      callbacks: {
        shouldStop: (epoch, batch) => options.stopAt?.epoch === epoch && options.stopAt.batch === batch,
        onEpochBegin: () => {
          epochStarted = performance.now();
        },
        onBatchEnd: (p) => {
          if (p.done === 1)
            bar = new ProgressBar(`epoch ${p.epoch}/${config.epochs}`, p.total ?? 0, process.stderr, options.quiet);
          bar?.update(p.done, {
            loss: p.loss.toFixed(4),
            ...(p.accuracy !== null ? { acc: `${(100 * p.accuracy).toFixed(1)}%` } : {}),
            speed: `${p.imagesPerSecond.toFixed(0)} img/s`,
          });
          probes?.after(p.epoch, p.done, p.total ?? 0);
        },
        evaluate: (_epoch, temperature) => ({
          test: testScore(net, dataset, testSample),
          entanglement: entanglement(
            net,
            dataset,
            measureOptions(config),
            temperature === 'optimal' ? 1 : temperature,
            sample,
          ),
        }),
        onEpochEnd: async (metrics, loopState) => {
          loopState.wallSeconds = (loopState.wallSeconds ?? 0) + (performance.now() - epochStarted) / 1000;
          await saveRunState(dir, net, optimizer, loopState);
          // summary.json when the last epoch is done, its wall time summed over every sitting.
          if (loopState.epoch === config.epochs) writeSummary(dir, loopState.history, loopState.wallSeconds);
          options.onEpoch?.(metrics);
          if (!options.quiet) log(formatEpoch(metrics, backend));
        },
      },
    });
    // A run killed between its last checkpoint and its summary gets the summary now.
    if (history.length === config.epochs && !existsSync(runFiles(dir).summary)) {
      writeSummary(dir, history, state?.wallSeconds ?? history.reduce((a, m) => a + m.seconds, 0));
    }
    return history;
  } finally {
    probes?.dispose();
    net.model.dispose();
    optimizer.dispose();
  }
}

/**
 * The run's probes (config.probe), with the records of finished epochs kept from an earlier sitting and
 * the first probe taken before training; undefined when the run has none.
 */
function startProbes(dir: string, config: TrainConfig, net: Network, dataset: Dataset, finished: number) {
  if (!config.probe) return undefined;
  const path = runFiles(dir).probes;
  const layers = resolveProbeLayers(net, config.probe.layers);
  const sample = evaluationSample(dataset, config.probe.size, config.seed);
  const probe = new LayerProbe(net, dataset, layers, sample, measureOptions(config));
  // Probes of an epoch that did not finish are taken again as it is replayed.
  const records = readProbes(path).filter((r) => r.progress <= finished);
  const take = (epoch: number, batch: number, total: number) => {
    records.push({ epoch, batch, progress: epoch + (total > 0 ? batch / total : 0), layers: probe.measure() });
    writeProbes(path, records);
  };
  if (!records.some((r) => r.progress === 0)) take(0, 0, 0);
  const perEpoch = config.probe.perEpoch;
  let at = new Set<number>();
  return {
    /** After batch `done` of epoch `epoch` (1-based), of `total`. */
    after(epoch: number, done: number, total: number) {
      if (done === 1) at = probeBatches(total, perEpoch);
      if (at.has(done)) take(epoch - 1, done, total);
    },
    dispose: () => probe.dispose(),
  };
}

/** One line for a finished epoch: test score, speed, and each layer's entanglement. */
export function formatEpoch(m: EpochMetrics, backend: string): string {
  const accuracy =
    m.test.accuracy !== null
      ? `test accuracy ${(100 * m.test.accuracy).toFixed(2)}%${m.test.loss !== undefined ? `, loss ${m.test.loss.toFixed(4)}` : ''}`
      : `test BCE ${m.test.reconstruction?.toFixed(4)}`;
  const layers = Object.entries(m.entanglement)
    .map(
      ([name, e]) =>
        `${name} ${e.loss.toFixed(3)} (opt ${e.optimalLoss.toFixed(3)} @T=${e.optimalTemperature.toPrecision(3)})`,
    )
    .join(', ');
  return `epoch ${m.epoch}: ${accuracy}, ${m.imagesPerSecond.toFixed(0)} img/s on ${backend}; SNNL ${layers}`;
}
