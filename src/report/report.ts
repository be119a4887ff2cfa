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
import { umap2d } from './embedding.js';
import { accuracySpec, curvesSpec, embeddingSpec, probesSpec, svgToPng, toSvg, type Row } from './figures.js';

export interface RunSummary {
  label: string;
  dir: string;
  history: EpochMetrics[];
  /** What the figures group by: the SNNL settings (color), the data set (panel row) and the seed. */
  group?: { settings: string; dataset: string; seed: number };
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
  const settings = config.factor === 0 ? 'baseline' : `SNNL a=${config.factor}, T=${config.temperature}`;
  return detailed ? `${config.dataset} ${settings} s${config.seed}` : settings;
}

/** Text made safe inside HTML (elements and attribute values). */
export const escape = (s: string) =>
  s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** An HTML table from a header and rows of cells. */
export function htmlTable(header: string[], rows: string[][]): string {
  const head = header.map((h) => `<th>${escape(h)}</th>`).join('');
  const body = rows.map((r) => `<tr>${r.map((c) => `<td>${escape(c)}</td>`).join('')}</tr>`).join('\n');
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** Per-run rows of the results table: final and best test accuracy and the last epoch's entanglement. */
export function resultsTable(runs: RunSummary[]): { header: string[]; rows: string[][] } {
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
      ...layers.map((l) => (last?.entanglement[l] ? last.entanglement[l]!.optimalLoss.toFixed(3) : '-')),
    ];
  });
  return { header, rows };
}

/** A reproduction's table.md, shown as it is. */
function reproductionTable(dir: string): string[] {
  const path = join(dir, 'table.md');
  return existsSync(path) ? [`<h2>Table</h2><pre>${escape(readFileSync(path, 'utf8'))}</pre>`] : [];
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
    return { dir: d, label: runLabel(d, detailed), history: readHistory(d), group };
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
  const { config, backend, versions } = readStoredConfig(finished[0]!.dir);
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(options.title ?? 'snnl report')}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; } td, th { border: 1px solid #ccc; padding: 4px 10px; text-align: right; }
td:first-child, th:first-child { text-align: left; } figure { margin: 1.5em 0; } figcaption { color: #555; font-size: 90%; }
.meta { color: #666; font-size: 90%; }
</style></head><body>
<h1>${escape(options.title ?? 'snnl report')}</h1>
<p class="meta">${escape(`${config.model} on ${config.dataset}, ${config.epochs} epochs, batch ${config.batchSize}, seed ${config.seed}; backend ${backend}; snnl ${versions.snnl}, tfjs ${versions.tfjs}, Node ${versions.node}. Runs: ${finished.map((r) => relative(dir, r.dir) || '.').join(', ')}`)}</p>
${[...(options.sections ?? []), ...reproductionTable(dir)].join('\n')}
<h2>Results</h2>
<p>Test accuracy on the real test split; entanglement is the SNNL of each hidden layer on a fixed sample of test images, at the temperature that minimizes it. Lower means the classes are more separated.</p>
${htmlTable(table.header, table.rows)}
${figures.map((f) => `<figure id="${f.name}">${f.svg}<figcaption>${escape(f.name)} (also ${f.name}.png)</figcaption></figure>`).join('\n')}
${notes.join('\n')}
</body></html>
`;
  const path = join(dir, 'report.html');
  writeAtomic(path, page);
  return path;
}
