/**
 * `snnl dknn RUN_DIR`: the Deep k-NN study of a trained run, written to RUN_DIR/dknn (or --out): dknn.json
 * and its figures (PNG) (credibility histograms, reliability diagram, the nearest-neighbour panel, t-SNE and
 * UMAP of the input-gradient signs), and a table on stdout.
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadDataset } from '../data/datasets.js';
import { describeBackend, useBackend } from '../engine/backend.js';
import { checkOneOf, InputError } from '../errors.js';
import { formatTable } from '../format.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { P_VALUE_FORMS } from '../analysis/dknn.js';
import { dknnStudy, type DknnStudy, type DknnStudyOptions } from '../experiments/dknn.js';
import { DETECTOR_LABELS, DETECTORS } from '../experiments/dknn-detectors.js';
import { pairedDifferences, pairedMarkdown } from '../experiments/dknn-paired.js';
import {
  aurocSpec,
  dknnSummaryMarkdown,
  findStudies,
  readStudy,
  summarizeStudies,
} from '../experiments/dknn-summary.js';
import {
  calibrationSpec,
  gradientEmbeddingSpec,
  panelSvg,
  reliabilitySpec,
  scoreHistogramSpec,
} from '../report/dknn.js';
import { svgToPng, toSvg } from '../report/figures.js';
import { readStoredConfig } from '../training/run-store.js';
import { ProgressBar } from '../training/progress.js';
import { parseNumberFlag } from './train-flags.js';

export interface DknnFlags {
  layers?: string;
  k?: string;
  calibration?: string;
  pValues?: string;
  normalize?: boolean;
  prune?: boolean;
  outliers?: string;
  eps?: string;
  epsilon?: string;
  mondrian?: boolean;
  gradientSample?: string;
  trainSubset?: string;
  pgdSteps?: string;
  knnK?: string;
  replicates?: string;
  seed?: string;
  out?: string;
  backend?: string;
  json?: boolean;
}

const whole = (n: number) => Number.isInteger(n) && n >= 1;
const wholeNumber = (value: string | undefined, flag: string) =>
  parseNumberFlag(value, flag, whole, 'a whole number above 0');

/** The study's options from the flags (checked against the run later, before any work). */
export function dknnOptions(flags: DknnFlags): DknnStudyOptions {
  const options: DknnStudyOptions = {};
  if (flags.layers !== undefined)
    options.layers = flags.layers
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  const k = wholeNumber(flags.k, '--k');
  if (k !== undefined) options.k = k;
  const calibration = wholeNumber(flags.calibration, '--calibration');
  if (calibration !== undefined) options.calibration = calibration;
  if (flags.pValues !== undefined) options.pValues = checkOneOf(flags.pValues, P_VALUE_FORMS, '--p-values');
  if (flags.normalize === false) options.normalize = false;
  if (flags.prune === false) options.prune = false;
  const outliers = wholeNumber(flags.outliers, '--outliers');
  if (outliers !== undefined) options.outliers = outliers;
  const sample = wholeNumber(flags.gradientSample, '--gradient-sample');
  if (sample !== undefined) options.gradientSample = sample;
  const subset = wholeNumber(flags.trainSubset, '--train-subset');
  if (subset !== undefined) options.trainSubset = subset;
  const pgdSteps = parseNumberFlag(
    flags.pgdSteps,
    '--pgd-steps',
    (n) => Number.isInteger(n) && n >= 0,
    'a whole number (0: no PGD)',
  );
  if (pgdSteps !== undefined) options.pgdSteps = pgdSteps;
  const knnK = wholeNumber(flags.knnK, '--knn-k');
  if (knnK !== undefined) options.knnK = knnK;
  const replicates = parseNumberFlag(
    flags.replicates,
    '--replicates',
    (n) => Number.isInteger(n) && n >= 0,
    'a whole number (0: none)',
  );
  if (replicates !== undefined) options.replicates = replicates;
  const seed = parseNumberFlag(flags.seed, '--seed', (n) => Number.isInteger(n) && n >= 0, 'a whole number');
  if (seed !== undefined) options.seed = seed;
  if (flags.eps !== undefined)
    options.eps = flags.eps
      .split(',')
      .map((s) => parseNumberFlag(s, '--eps', (e) => e > 0 && e <= 1, 'numbers in (0, 1]')!);
  if (flags.epsilon !== undefined)
    options.epsilons = flags.epsilon
      .split(',')
      .map((s) => parseNumberFlag(s, '--epsilon', (e) => e > 0 && e < 1, 'error rates in (0, 1)')!);
  if (flags.mondrian) {
    if (options.pValues !== 'finite' && options.pValues !== 'smoothed')
      throw new InputError('--mondrian', 'needs conformal p-values: add --p-values finite (or smoothed)');
    options.mondrian = true;
  }
  return options;
}

const pct = (v: number | null) => (v === null || Number.isNaN(v) ? '-' : `${(100 * v).toFixed(2)}%`);
const num = (v: number) => v.toFixed(3);

export function formatDknn(study: DknnStudy): string {
  const header = ['set', 'images', 'DkNN acc', 'net acc', 'mean cred'];
  const rows = study.sets.map((s) => [
    s.name,
    String(s.count),
    pct(s.dknnAccuracy),
    pct(s.networkAccuracy),
    num(s.credibility.mean),
  ]);
  // One column pair per detector the study has (older dknn.json files: credibility and softmax only).
  const detectors = DETECTORS.filter((d) => study.sets.some((s) => s.auroc?.[d] !== undefined));
  const outliers = study.sets.filter((s) => s.auroc !== null);
  const separationTable = formatTable([
    ['set', ...detectors.map((d) => `AUROC ${DETECTOR_LABELS[d]}`)],
    ...outliers.map((s) => [s.name, ...detectors.map((d) => (s.auroc?.[d] !== undefined ? num(s.auroc[d]) : '-'))]),
    ['', ...detectors.map(() => '')],
    ['set', ...detectors.map((d) => `FPR95 ${DETECTOR_LABELS[d]}`)],
    ...outliers.map((s) => [s.name, ...detectors.map((d) => (s.fpr95?.[d] !== undefined ? pct(s.fpr95[d]) : '-'))]),
  ]);
  const info = study.detectors;
  const leftOut = info ? Object.entries(info.leftOut).map(([d, why]) => `${d} left out: ${why}`) : [];
  const g = study.gradients;
  return [
    `Deep k-NN of ${study.run}: ${study.dataset}, ${study.model}, factor ${study.factor}, seed ${study.seed}`,
    `layers ${study.layers.join(', ')}; k ${study.k}; ${study.trainImages} training images; calibration ${study.calibration}; ` +
      `p-values ${study.pValues}; features ${study.normalize ? 'unit length, centred' : 'raw'}; ${study.backend}`,
    '',
    formatTable([header, ...rows]),
    '',
    separationTable,
    '',
    `AUROC and FPR95: clean test images against each set (FPR at 95% TPR: outliers accepted when 95% of clean images are).`,
    ...(info
      ? [
          `energy from the logits; Mahalanobis and the k-th NN distance (k = ${info.knnK}) on ${info.penultimate} (${info.dim} features)` +
            (study.pgd ? `; PGD: ${study.pgd.steps} steps of ${study.pgd.stepSize} from a random start` : ''),
        ]
      : []),
    ...leftOut,
    `input-gradient signs of ${g.images} test images: SNNL ${num(g.snnlOptimal)} at the optimal T (ceiling ${num(g.ceiling)}), ` +
      `${g.k}-NN label purity ${pct(g.knnPurity)}`,
    `prediction sets (labels with p > epsilon): coverage of the true label, mean size, share empty` +
      `${study.mondrian ? ' (Mondrian calibration)' : ''}`,
    formatTable([
      ['set', ...(study.sets[0]?.conformal ?? []).map((c) => `eps ${c.epsilon}`)],
      ...study.sets.map((s) => [
        s.name,
        ...(s.conformal ?? []).map(
          (c) => `${c.coverage === null ? '-' : pct(c.coverage)} / ${c.meanSize.toFixed(2)} / ${pct(c.empty)}`,
        ),
      ]),
    ]),
    `took ${study.seconds.total.toFixed(0)} s (features ${study.seconds.features.toFixed(0)} s, search ${study.seconds.search.toFixed(0)} s` +
      `${study.seconds.detectors !== undefined ? `, detectors ${study.seconds.detectors.toFixed(0)} s` : ''})`,
    ...(study.exactShare ? [searchLine(study.exactShare)] : []),
  ].join('\n');
}

/** Which layers the pruned search served, and the share of distances it computed in each. */
export function searchLine(exactShare: Record<string, number>): string {
  const pruned = Object.entries(exactShare).filter(([, share]) => share < 1);
  if (pruned.length === 0) return 'k-NN search: every distance computed';
  const shares = pruned.map(([layer, share]) => `${layer} ${(100 * share).toFixed(share < 0.01 ? 2 : 1)}%`).join(', ');
  return `k-NN search: pruned by a low-rank bound; exact distances for ${shares} of the pairs`;
}

export async function dknnCommand(runDir: string, flags: DknnFlags, log: (line: string) => void): Promise<DknnStudy> {
  if (!existsSync(runDir) || !statSync(runDir).isDirectory()) throw new InputError(runDir, 'is not a folder');
  readStoredConfig(runDir); // a run folder, or a clear error
  const options = dknnOptions(flags);
  await useBackend(flags.backend);
  const backend = describeBackend();
  const out = flags.out ?? join(runDir, 'dknn');
  // One bar per layer and pass (the calibration set's search, then the queries').
  let bar: { label: string; done: number; bar: ProgressBar } | undefined;
  const { study, gradientSigns } = dknnStudy(runDir, options, backend, log, (label, done, total) => {
    if (bar === undefined || bar.label !== label || done <= bar.done)
      bar = { label, done, bar: new ProgressBar(label, total) };
    bar.done = done;
    bar.bar.update(done);
  });
  mkdirSync(out, { recursive: true });
  writeJsonAtomic(join(out, 'dknn.json'), study);
  const figure = async (name: string, svg: string) => writeAtomic(join(out, `${name}.png`), svgToPng(svg));
  await figure('scores', await toSvg(scoreHistogramSpec(study)));
  await figure('reliability', await toSvg(reliabilitySpec(study)));
  await figure('calibration', await toSvg(calibrationSpec(study)));
  const dataset = loadDataset(study.dataset);
  await figure('neighbors', panelSvg(study, dataset.train, dataset.imageShape));
  const label = `factor ${study.factor}, seed ${study.seed}`;
  await figure('gradients', await toSvg(gradientEmbeddingSpec([{ label, ...gradientSigns }], study.seed)));
  log(`written: ${out}/dknn.json, scores.png, reliability.png, calibration.png, neighbors.png, gradients.png`);
  return study;
}

/** `snnl dknn-summary DIR [--out OUT]`: the table (printed, and written with the figure when --out is given). */
export async function dknnSummaryCommand(dir: string, out?: string): Promise<string> {
  const studies = findStudies(dir).map(readStudy);
  if (studies.length === 0) throw new InputError(dir, 'holds no dknn.json (run snnl dknn on a run first)');
  const rows = summarizeStudies(studies);
  const paired = pairedDifferences(studies);
  const markdown = dknnSummaryMarkdown(rows) + pairedMarkdown(paired);
  if (out !== undefined) {
    mkdirSync(out, { recursive: true });
    writeAtomic(join(out, 'table.md'), markdown);
    writeJsonAtomic(join(out, 'table.json'), { rows, paired });
    writeAtomic(join(out, 'auroc.png'), svgToPng(await toSvg(aurocSpec(studies))));
  }
  return markdown;
}
