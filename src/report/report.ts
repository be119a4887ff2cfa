/**
 * `snnl report DIR`: one self-contained HTML page (figures as inline SVG, PNG files beside it) for a
 * run folder, or for a folder of runs (an experiment or a reproduction), with their table.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { gatherBatch } from '../data/batches.js';
import { InputError } from '../errors.js';
import { evaluationSample } from '../training/evaluate.js';
import { readProbes } from '../training/probes.js';
import type { EpochMetrics } from '../training/loop.js';
import { loadTrainedNetwork, readHistory, readStoredConfig, runFiles } from '../training/run-store.js';
import { writeAtomic } from '../io/atomic.js';
import { loadDataset } from '../data/datasets.js';
import { snnlCeiling } from '../loss/temperature.js';
import type { TrainConfig } from '../training/config.js';
import { escape, htmlTable, PAGE_STYLE, type Cell } from './html.js';
import { markdownToHtml } from './markdown.js';
import { umap2d } from './embedding.js';
import { accuracySpec, curvesSpec, embeddingSpec, probesSpec, svgToPng, toSvg, type Row } from './figures.js';

export interface RunSummary {
  label: string;
  dir: string;
  history: EpochMetrics[];
  /** What the figures group by: the SNNL settings (color), the data set (panel row) and the seed. */
  group?: { settings: string; dataset: string; seed: number };
  /** SNNL's ceiling on the run's evaluation sample (snnlCeiling), where its data set can be read. */
  ceiling?: number;
}

/** The run folders of `dir`: itself if it is one, else the runs in its sub-folders, two levels deep. */
export function findRuns(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new InputError(dir, 'no such folder');
  const search = (folder: string, depth: number): string[] => {
    if (existsSync(runFiles(folder).config)) return [folder];
    if (depth === 0) return [];
    return readdirSync(folder)
      .sort()
      .map((name) => join(folder, name))
      .filter((path) => statSync(path).isDirectory())
      .flatMap((path) => search(path, depth - 1));
  };
  const runs = search(dir, 2);
  if (runs.length === 0) throw new InputError(dir, 'holds no run (no config.json in it or its sub-folders)');
  return runs;
}

/** A short name for a run: its SNNL settings (with data set and seed where runs differ in those). */
export function runLabel(dir: string, detailed = false): string {
  const { config } = readStoredConfig(dir);
  const settings =
    config.factor === 0
      ? 'baseline'
      : `SNNL a=${config.factor}, T=${config.temperature}${config.optimizeTemperature ? ' one-step' : ''}`;
  return detailed ? `${config.dataset} ${settings} s${config.seed}` : settings;
}

/**
 * An optimal-temperature SNNL as a table cell, flagged where it cannot be right: not finite, below 0, or
 * above the ceiling (the T -> infinity limit, which the minimum over T never exceeds).
 */
export function entanglementCell(value: number, ceiling: number | undefined): Cell {
  const text = Number.isFinite(value) ? value.toFixed(3) : String(value);
  if (!Number.isFinite(value)) return { text, suspect: 'not a finite number' };
  if (value < 0) return { text, suspect: 'below 0: SNNL is never negative' };
  if (ceiling !== undefined && value > ceiling * 1.001) {
    return {
      text,
      suspect: `above the ceiling ${ceiling.toFixed(3)} (SNNL as T grows), which the optimal temperature's value never exceeds: a failed search`,
    };
  }
  return text;
}

/** Per-run rows of the results table: final and best test accuracy and the last epoch's entanglement. */
export function resultsTable(runs: RunSummary[]): { header: string[]; rows: Cell[][] } {
  const layers = [...new Set(runs.flatMap((r) => Object.keys(r.history.at(-1)?.entanglement ?? {})))];
  const header = ['run', 'epochs', 'test accuracy', 'best', ...layers.map((l) => `SNNL ${l} (optimal T)`)];
  const rows = runs.map((r) => {
    const last = r.history.at(-1);
    const accuracies = r.history.map((m) => m.test.accuracy ?? NaN);
    return [
      r.label,
      String(r.history.length),
      last?.test.accuracy != null ? `${(100 * last.test.accuracy).toFixed(2)}%` : '-',
      accuracies.length ? `${(100 * Math.max(...accuracies)).toFixed(2)}%` : '-',
      ...layers.map((l) =>
        last?.entanglement[l] ? entanglementCell(last.entanglement[l]!.optimalLoss, r.ceiling) : '-',
      ),
    ];
  });
  return { header, rows };
}

/** A reproduction's table.md, as HTML tables (its headings one level down). */
function reproductionTable(dir: string): string[] {
  const path = join(dir, 'table.md');
  if (!existsSync(path)) return [];
  const markdown = readFileSync(path, 'utf8').replace(/^# .*\n/, '');
  return [`<h2>Table</h2>\n${markdownToHtml(markdown, 1)}`];
}

/** A figure's SVG as the page inlines it: each mark's accessibility labels dropped, geometry to 0.1 px (text untouched). */
export function compactSvg(svg: string): string {
  return svg
    .replace(/<path aria-label="[^"]*" role="graphics-symbol" aria-roledescription="[^"]*"/g, '<path')
    .replace(/(transform|d|x|y|x1|x2|y1|y2|width|height)="([^"]*)"/g, (_m, name: string, value: string) => {
      return `${name}="${value.replace(/(\d+\.\d)\d+/g, '$1')}"`;
    });
}

/** Inline SVGs above this many characters are linked as their PNG beside the page instead. */
export const INLINE_SVG_LIMIT = 600_000;

/**
 * One figure of the page: its compact SVG inline, or where even that is too large (thousands of points), its
 * PNG, which is written beside the page, so the page stays small enough to commit and to mail.
 */
export function inlineFigure(f: { name: string; svg: string }): string {
  const svg = compactSvg(f.svg);
  const body =
    svg.length <= INLINE_SVG_LIMIT ? svg : `<img src="${f.name}.png" alt="${escape(f.name)}" style="max-width: 100%">`;
  return `<figure id="${f.name}">${body}<figcaption>${escape(f.name)} (also ${f.name}.png)</figcaption></figure>`;
}

/** The first heading of a reproduction's table.md, as the page's title. */
function tableTitle(dir: string): string | undefined {
  const path = join(dir, 'table.md');
  return existsSync(path) ? /^# (.*)$/m.exec(readFileSync(path, 'utf8'))?.[1] : undefined;
}

/** SNNL's ceiling on a run's evaluation sample; undefined where its data set cannot be read here. */
function ceilingOf(config: TrainConfig): number | undefined {
  try {
    const dataset = loadDataset(config.dataset, config.dataDir);
    const sample = evaluationSample(dataset, config.evalSample, config.seed);
    return snnlCeiling(Array.from(sample, (i) => dataset.test.labels[i]!));
  } catch {
    return undefined;
  }
}

/** What a page of runs holds, in one sentence: models, data sets, settings, seeds, epochs. */
export function describeRuns(configs: TrainConfig[]): string {
  const list = <T>(values: T[]) => [...new Set(values.map(String))];
  const and = (items: string[]) =>
    items.length <= 1 ? items.join('') : `${items.slice(0, -1).join(', ')} and ${items.at(-1)}`;
  const settings = list(
    configs.map((c) =>
      c.factor === 0 ? 'baseline' : `a=${c.factor}, T=${c.temperature}${c.optimizeTemperature ? ' one-step' : ''}`,
    ),
  );
  const seeds = list(configs.map((c) => c.seed));
  const epochs = list(configs.map((c) => c.epochs));
  const batches = list(configs.map((c) => c.batchSize));
  const what = `${and(list(configs.map((c) => c.model)))} on ${and(list(configs.map((c) => c.dataset)))}`;
  if (configs.length === 1) {
    return `One run: ${what}, ${settings[0]}, ${epochs[0]} epochs, batch ${batches[0]}, seed ${seeds[0]}.`;
  }
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  return `${configs.length} runs: ${what}; ${plural(settings.length, 'configuration')} (${settings.join('; ')}); ${plural(seeds.length, 'seed')} (${seeds.join(', ')}); ${epochs.join(' or ')} epochs, batch ${batches.join(' or ')}.`;
}

export interface ReportOptions {
  /** Test images drawn per layer in the UMAP pictures (default 600). */
  points?: number;
  /** Extra HTML sections placed before the figures. */
  sections?: string[];
  title?: string;
  log?: (line: string) => void;
}

/** Embeds each hidden layer of each run's trained network (a fixed sample of test images). */
async function embeddingRows(runs: RunSummary[], points: number, log: (l: string) => void): Promise<Row[]> {
  const rows: Row[] = [];
  for (const run of runs) {
    const { net, dataset, stored } = loadTrainedNetwork(run.dir);
    const sample = evaluationSample(dataset, points, stored.config.seed);
    const norm = net.kind === 'autoencoder' ? { mean: 0, std: 1 } : dataset.normalization;
    const batch = gatherBatch(dataset.test, dataset.imageShape, norm, sample);
    const outputs = net.model.predict(batch.x, { batchSize: 250 }) as tf.Tensor[];
    for (const [k, layer] of net.hiddenLayers.entries()) {
      log(`  UMAP of ${run.label} / ${layer}`);
      const h = tf.reshape(outputs[k]!, [sample.length, -1]);
      const coordinates = umap2d(h.arraySync() as number[][], stored.config.seed);
      h.dispose();
      coordinates.forEach(([x, y], i) => rows.push({ run: run.label, layer, x: x!, y: y!, class: batch.labels[i]! }));
    }
    tf.dispose([...outputs, batch.x, batch.y]);
    net.model.dispose();
  }
  return rows;
}

/** Builds DIR/report.html and its PNG figures; returns the page's path. */
export async function buildReport(dir: string, options: ReportOptions = {}): Promise<string> {
  const log = options.log ?? (() => undefined);
  const found = findRuns(dir);
  const configs = new Map(found.map((d) => [d, readStoredConfig(d).config]));
  const detailed = new Set([...configs.values()].map((c) => `${c.dataset} ${c.seed}`)).size > 1;
  const runs: RunSummary[] = found.map((d) => {
    const c = configs.get(d)!;
    const group = { settings: runLabel(d), dataset: c.dataset, seed: c.seed };
    return { dir: d, label: runLabel(d, detailed), history: readHistory(d), group, ceiling: ceilingOf(c) };
  });
  const groupOf = (r: RunSummary) => ({ config: r.group!.settings, dataset: r.group!.dataset, seed: r.group!.seed });
  const finished = runs.filter((r) => r.history.length > 0);
  if (finished.length === 0) throw new InputError(dir, 'no run in it has finished an epoch yet');
  const figures: Array<{ name: string; svg: string }> = [];
  const entanglementRows = (key: 'loss' | 'optimalLoss') =>
    finished.flatMap((r) =>
      r.history.flatMap((m) =>
        Object.entries(m.entanglement).map(([layer, e]) => ({
          run: r.label,
          ...groupOf(r),
          epoch: m.epoch,
          layer,
          value: e[key],
        })),
      ),
    );
  figures.push({
    name: 'entanglement-optimal',
    svg: await toSvg(
      curvesSpec(
        entanglementRows('optimalLoss'),
        'value',
        'Entanglement per layer over training (SNNL at the optimal temperature)',
        'SNNL',
      ),
    ),
  });
  figures.push({
    name: 'entanglement-fixed',
    svg: await toSvg(
      curvesSpec(
        entanglementRows('loss'),
        'value',
        "Entanglement per layer over training (SNNL at the run's temperature)",
        'SNNL',
      ),
    ),
  });
  const accuracyRows = finished.flatMap((r) =>
    r.history
      .filter((m) => m.test.accuracy !== null)
      .map((m) => ({ run: r.label, ...groupOf(r), epoch: m.epoch, accuracy: 100 * m.test.accuracy! })),
  );
  if (accuracyRows.length > 0) figures.push({ name: 'accuracy', svg: await toSvg(accuracySpec(accuracyRows)) });
  const probeRows = finished.flatMap((r) =>
    readProbes(runFiles(r.dir).probes).flatMap((p) =>
      Object.entries(p.layers).map(([layer, e]) => ({
        run: r.label,
        layer,
        progress: p.progress,
        snnl: e.optimalLoss,
      })),
    ),
  );
  if (probeRows.length > 0) figures.push({ name: 'probes', svg: await toSvg(probesSpec(probeRows)) });
  // With several seeds, the pictures show the first seed's runs: one row per configuration. They need the
  // trained networks: runs whose checkpoint is gone (results committed without them) are left out.
  const firstSeed = configs.get(finished[0]!.dir)!.seed;
  const pictured = finished.filter(
    (r) => configs.get(r.dir)!.seed === firstSeed && existsSync(runFiles(r.dir).checkpoint),
  );
  const notes: string[] = [];
  if (pictured.length > 0) {
    log('embedding the hidden layers (UMAP)');
    const embedded = await embeddingRows(pictured, options.points ?? 600, log);
    figures.push({ name: 'representations-umap', svg: await toSvg(embeddingSpec(embedded, 'UMAP')) });
  } else {
    const kept = existsSync(join(dir, 'representations-umap.png'))
      ? ' The picture made while they were there is kept beside this page: <a href="representations-umap.png">representations-umap.png</a>.'
      : '';
    notes.push(
      `<p class="meta">No representation pictures: they need the runs' checkpoints (checkpoint.bin), which are not in this folder.${kept}</p>`,
    );
    log('no checkpoints here: the representation pictures are left out');
  }
  for (const f of figures) writeAtomic(join(dir, `${f.name}.png`), svgToPng(f.svg));
  const table = resultsTable(finished);
  const { backend, versions } = readStoredConfig(finished[0]!.dir);
  const suspects = table.rows.flat().filter((c) => typeof c !== 'string').length;
  const suspectNote =
    suspects > 0
      ? `<p class="meta">&#9888; ${suspects} value${suspects === 1 ? '' : 's'} cannot be right (hover for why): the optimal temperature's SNNL is never negative and never above its ceiling, SNNL's value as T grows (about log 10 = 2.3 for ten balanced classes).</p>`
      : '';
  const title = options.title ?? tableTitle(dir) ?? 'snnl report';
  const runList = finished.map((r) => `<li>${escape(relative(dir, r.dir) || '.')}</li>`).join('');
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escape(title)}</title>
<style>
${PAGE_STYLE}
</style></head><body>
<h1>${escape(title)}</h1>
<p>${escape(describeRuns(finished.map((r) => configs.get(r.dir)!)))}</p>
<p class="meta">${escape(`Backend ${backend}; snnl ${versions.snnl}, tfjs ${versions.tfjs}, Node ${versions.node} (of the first run).`)}</p>
${finished.length > 1 ? `<details class="meta"><summary>The ${finished.length} run folders</summary><ul>${runList}</ul></details>` : ''}
${[...(options.sections ?? []), ...reproductionTable(dir)].join('\n')}
<h2>Results</h2>
<p>Test accuracy on the real test split; entanglement is the SNNL of each hidden layer on a fixed sample of test images, at the temperature that minimizes it. Lower means the classes are more separated.</p>
${htmlTable(table.header, table.rows)}
${suspectNote}
${figures.map(inlineFigure).join('\n')}
${notes.join('\n')}
</body></html>
`;
  const path = join(dir, 'report.html');
  writeAtomic(path, page);
  return path;
}
