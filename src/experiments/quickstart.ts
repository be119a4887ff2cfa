/**
 * The main job (`npm start`): a short real experiment on MNIST that needs nothing beyond `npm install`.
 * The MLP is trained three times, the same seed and data each time: without SNNL, with SNNL pulling the
 * classes apart in every hidden layer (factor +10), and with SNNL entangling them (factor -10, the
 * paper's regularizer); stable SNNL on cosine distance at T = 0.1. (The published table's T = 100 on
 * cosine distance makes exp(-D/T) nearly 1 for every pair, so its SNNL term barely changes anything.)
 * The command line ends it with the table and a report (entanglement curves, accuracy, UMAP of each layer).
 */
import { TRAIN_DEFAULTS, type TrainConfig } from '../training/config.js';
import { runAll, type PlannedRun } from './runs.js';

export interface QuickstartOptions {
  out: string;
  epochs: number;
  trainSubset?: number;
}

export function quickstartPlan(options: QuickstartOptions): PlannedRun[] {
  const base: TrainConfig = {
    ...TRAIN_DEFAULTS,
    dataset: 'mnist',
    model: 'mlp',
    modelOptions: {},
    distance: 'cosine',
    preset: 'stable',
    temperature: 0.1,
    layers: 'all',
    factor: 0,
    epochs: options.epochs,
    ...(options.trainSubset ? { trainSubset: options.trainSubset } : {}),
  };
  return [
    { name: 'baseline', config: { ...base, factor: 0 } },
    { name: 'snnl-disentangle', config: { ...base, factor: 10 } },
    { name: 'snnl-entangle', config: { ...base, factor: -10 } },
  ];
}

/** Trains (or resumes, or skips) the three runs in `options.out`. */
export function quickstart(options: QuickstartOptions, backend: string, log: (l: string) => void) {
  return runAll(options.out, quickstartPlan(options), backend, log);
}
