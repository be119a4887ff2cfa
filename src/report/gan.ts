/**
 * The GAN study's report (`snnl gan`, `snnl gan-report`): SNNL of real against generated data over
 * training, one line per representation, with the poster's four figures and the ceiling marked; the same
 * at each fixed temperature; the GAN's losses; t-SNE of the probe at the snapshot steps in one
 * representation; and grids of generated samples at those steps.
 */
import { join } from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import {
  POSTER_GAN,
  readGanConfig,
  readGanRecords,
  snapshotRepresentations,
  type GanRecord,
} from '../experiments/gan.js';
import { InputError } from '../errors.js';
import { writeAtomic, writeJsonAtomic } from '../io/atomic.js';
import { tsne2d } from './embedding.js';
import { CONFIG, imageSvg, svgToPng, toSvg, type Row } from './figures.js';
import { escape, htmlTable, PAGE_STYLE } from './html.js';

/** A setting a representation is measured at: 'optimal' or a fixed temperature as written. */
export type Setting = 'optimal' | string;

/** The settings a study measured: the optimal temperature, then each fixed one (as its records write them). */
export function settingsOf(record: GanRecord): Setting[] {
  return ['optimal', ...Object.keys(Object.values(record.representations)[0]?.fixed ?? {})];
}

export function valueAt(record: GanRecord, representation: string, setting: Setting): number | undefined {
  const r = record.representations[representation];
  if (!r) return undefined;
  return setting === 'optimal' ? r.optimalLoss : r.fixed[setting];
}

export interface Closest {
  representation: string;
  setting: Setting;
  /** Mean absolute difference from the poster's four figures. */
  difference: number;
}

/**
 * Every (representation, setting) ranked by how close its SNNL at the poster's steps lands to the
 * poster's figures (mean absolute difference); empty when the study did not measure all four steps.
 */
export function closestToPoster(records: GanRecord[]): Closest[] {
  const at = POSTER_GAN.map((p) => records.find((r) => r.step === p.step));
  if (at.some((r) => r === undefined)) return [];
  const first = at[0]!;
  const settings = settingsOf(first);
  const ranked: Closest[] = [];
  for (const representation of Object.keys(first.representations)) {
    for (const setting of settings) {
      const values = at.map((r) => valueAt(r!, representation, setting) ?? NaN);
      if (values.some((v) => !Number.isFinite(v))) continue;
      const difference = values.reduce((sum, v, k) => sum + Math.abs(v - POSTER_GAN[k]!.snnl), 0) / values.length;
      ranked.push({ representation, setting, difference });
    }
  }
  return ranked.sort((a, b) => a.difference - b.difference);
}

/** SNNL against step, one line per representation, with the poster's figures and the ceiling. */
export function ganSnnlSpec(records: GanRecord[], setting: Setting | 'all'): TopLevelSpec {
  const settings = setting === 'all' ? settingsOf(records[0]!) : [setting];
  const rows: Row[] = [];
  for (const r of records) {
    for (const representation of Object.keys(r.representations)) {
      for (const s of settings) {
        const value = valueAt(r, representation, s);
        if (value !== undefined) {
          rows.push({
            step: r.step,
            representation,
            temperature: s === 'optimal' ? 'optimal T' : `T = ${s}`,
            snnl: value,
            ceiling: r.ceiling,
          });
        }
      }
    }
  }
  const poster = POSTER_GAN.map((p) => ({ step: p.step, snnl: p.snnl, what: "poster's figure" }));
  const ceiling = records[0]!.ceiling;
  const panel = {
    width: 420,
    height: 240,
    layer: [
      {
        mark: { type: 'line', point: { size: 16 } },
        encoding: {
          x: { field: 'step', type: 'quantitative', title: 'training step' },
          y: { field: 'snnl', type: 'quantitative', title: 'SNNL (real vs generated)' },
          color: { field: 'representation', type: 'nominal', title: 'representation', sort: null },
        },
      },
      {
        data: { values: poster },
        mark: { type: 'point', shape: 'cross', size: 140, color: 'black', filled: true },
        encoding: {
          x: { field: 'step', type: 'quantitative' },
          y: { field: 'snnl', type: 'quantitative' },
          tooltip: { field: 'what' },
        },
      },
      {
        data: { values: [{ ceiling }] },
        mark: { type: 'rule', strokeDash: [4, 4], color: '#777' },
        encoding: { y: { field: 'ceiling', type: 'quantitative' } },
      },
    ],
  };
  const title =
    setting === 'all'
      ? 'Real vs generated at every temperature (black crosses: the poster; dashed: the ceiling)'
      : `Real vs generated at the ${setting === 'optimal' ? 'optimal temperature' : `temperature ${setting}`} (black crosses: the poster; dashed: the ceiling, ${ceiling.toFixed(3)})`;
  return (
    setting === 'all'
      ? {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          facet: { field: 'temperature', type: 'nominal', title: null, sort: null },
          columns: 2,
          spec: { ...panel, width: 300, height: 190 },
          // At a small fixed T the loss runs far above the ceiling: each panel gets its own scale.
          resolve: { scale: { y: 'independent' } },
          config: CONFIG,
        }
      : {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          ...panel,
          config: CONFIG,
        }
  ) as TopLevelSpec;
}

/** The GAN's losses and the discriminator's mean "real" probability on the probe, against step. */
export function ganLossesSpec(records: GanRecord[]): TopLevelSpec {
  const rows: Row[] = [];
  for (const r of records) {
    if (r.discriminatorLoss !== null)
      rows.push({ step: r.step, quantity: 'discriminator loss', value: r.discriminatorLoss });
    if (r.generatorLoss !== null) rows.push({ step: r.step, quantity: 'generator loss', value: r.generatorLoss });
    rows.push({ step: r.step, quantity: 'D(real) on the probe', value: r.realScore });
    rows.push({ step: r.step, quantity: 'D(generated) on the probe', value: r.fakeScore });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'The GAN over training (losses: mean since the previous measurement)',
    data: { values: rows },
    width: 420,
    height: 200,
    mark: { type: 'line', point: { size: 12 } },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: 'training step' },
      y: { field: 'value', type: 'quantitative', title: null },
      color: { field: 'quantity', type: 'nominal', title: null, sort: null },
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/**
 * SNNL of the probe (optimal temperature, each representation) against the generator's quality: the
 * Fréchet distance in the classifier's last hidden layer (left; lower is better), and the classifier's
 * confidence on generated images (right); one point per measurement, in step order.
 */
export function ganQualitySpec(records: GanRecord[]): TopLevelSpec {
  const rows: Row[] = [];
  for (const r of records) {
    if (!r.quality) continue;
    for (const [name, rep] of Object.entries(r.representations))
      rows.push({
        step: r.step,
        representation: name,
        snnl: rep.optimalLoss,
        frechet: r.quality.frechet,
        confidence: r.quality.confidence,
      });
  }
  const panel = (field: string, title: string) => ({
    width: 300,
    height: 220,
    mark: { type: 'line', point: { size: 14 } },
    encoding: {
      x: { field, type: 'quantitative', title, scale: { zero: false } },
      y: { field: 'snnl', type: 'quantitative', title: 'SNNL at the optimal temperature' },
      order: { field: 'step', type: 'quantitative' },
      color: { field: 'representation', type: 'nominal', title: null },
    },
  });
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: "SNNL of real against generated images against the generator's quality (one point per measurement)",
    data: { values: rows },
    hconcat: [
      panel('frechet', "Fréchet distance in the classifier's last hidden layer"),
      panel('confidence', "the classifier's mean confidence on generated images"),
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/** t-SNE of the probe (real 0, generated 1) at each snapshot step, one panel per step. */
export function ganTsneSpec(rows: Row[], representation: string): TopLevelSpec {
  const panels = [...new Set(rows.map((r) => String(r['panel'])))];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `t-SNE of real (blue) and generated (orange) images in ${representation}, with their SNNL`,
    data: { values: rows },
    facet: { field: 'panel', type: 'nominal', title: null, sort: panels },
    columns: 4,
    spec: {
      width: 170,
      height: 170,
      mark: { type: 'circle', size: 10, opacity: 0.7 },
      encoding: {
        x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false } },
        y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false } },
        color: {
          field: 'source',
          type: 'nominal',
          title: null,
          scale: { domain: ['real', 'generated'], range: ['#1f77b4', '#ff7f0e'] },
        },
      },
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Grids of generated images, one per snapshot step. */
export function samplesSvg(grids: Array<{ step: number; pixels: Float32Array }>, perSide = 6): string {
  const cell = 2;
  const size = 28 * cell;
  const gap = 2;
  const grid = perSide * (size + gap);
  const width = grids.length * (grid + 24) + 16;
  const height = grid + 40;
  const parts = [`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}">`];
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  grids.forEach(({ step, pixels }, g) => {
    const x0 = 16 + g * (grid + 24);
    parts.push(`<text x="${x0}" y="20" font-size="14" font-family="sans-serif">step ${step}</text>`);
    for (let k = 0; k < perSide * perSide; k++) {
      const image = Array.from(pixels.subarray(k * 784, (k + 1) * 784), (v) => v * 255);
      const x = x0 + (k % perSide) * (size + gap);
      const y = 30 + Math.floor(k / perSide) * (size + gap);
      parts.push(imageSvg(image, [28, 28, 1], x, y, cell));
    }
  });
  parts.push('</svg>');
  return parts.join('');
}

export interface GanReportOptions {
  /** The representation of the t-SNE pictures; default: the one closest to the poster's figures. */
  tsne?: string;
  log?: (line: string) => void;
}

/**
 * Writes the study's figures (PNG), summary.json and report.html (which shows the PNGs beside it: the sample
 * grids as inline SVG would weigh megabytes); returns the page's path.
 */
export async function buildGanReport(dir: string, options: GanReportOptions = {}): Promise<string> {
  const log = options.log ?? (() => undefined);
  const stored = readGanConfig(dir);
  const { config } = stored;
  const records = readGanRecords(dir);
  if (records.length === 0) throw new InputError(dir, 'the study has no measurement yet');
  const figures: Array<{ name: string; svg: string; caption: string }> = [];
  figures.push({
    name: 'snnl-optimal',
    svg: await toSvg(ganSnnlSpec(records, 'optimal')),
    caption: 'SNNL of the probe at the optimal temperature in each representation',
  });
  figures.push({
    name: 'snnl-all',
    svg: await toSvg(ganSnnlSpec(records, 'all')),
    caption: 'The same at each fixed temperature',
  });
  figures.push({ name: 'losses', svg: await toSvg(ganLossesSpec(records)), caption: 'Losses and scores' });
  if (records.some((r) => r.quality))
    figures.push({
      name: 'quality',
      svg: await toSvg(ganQualitySpec(records)),
      caption: "SNNL against the generator's quality (Fréchet distance and confidence in the classifier's eyes)",
    });
  const ranked = closestToPoster(records);
  const available = Object.keys(records[0]!.representations);
  if (options.tsne !== undefined && !available.includes(options.tsne)) {
    throw new InputError('--tsne', `no representation '${options.tsne}'; the study has ${available.join(', ')}`);
  }
  const chosen = options.tsne ?? ranked[0]?.representation ?? 'pixels';
  const setting = options.tsne === undefined ? (ranked[0]?.setting ?? 'optimal') : 'optimal';
  const steps = config.snapshots.filter((s) => records.some((r) => r.step === s));
  if (steps.length > 0) {
    const tsneRows: Row[] = [];
    const grids: Array<{ step: number; pixels: Float32Array }> = [];
    for (const step of steps) {
      log(`t-SNE of ${chosen} at step ${step}`);
      const { rows, labels, generated } = await snapshotRepresentations(dir, step, [chosen]);
      const record = records.find((r) => r.step === step)!;
      const optimal = record.representations[chosen]!.optimalLoss;
      const fixed = setting === 'optimal' ? undefined : valueAt(record, chosen, setting);
      const panel =
        fixed === undefined
          ? `step ${step}: SNNL ${optimal.toFixed(3)}`
          : `step ${step}: SNNL ${fixed.toFixed(3)} at T = ${setting}, ${optimal.toFixed(3)} at the optimal T`;
      const points = tsne2d(rows.get(chosen)!, config.seed);
      points.forEach(([x, y], i) =>
        tsneRows.push({
          panel,
          x: x!,
          y: y!,
          source: labels[i] === 0 ? 'real' : 'generated',
        }),
      );
      grids.push({ step, pixels: generated });
    }
    figures.push({
      name: 'tsne',
      svg: await toSvg(ganTsneSpec(tsneRows, chosen)),
      caption: `t-SNE of the probe in ${chosen}${options.tsne === undefined && ranked.length > 0 ? " (the representation closest to the poster's figures)" : ''}`,
    });
    figures.push({
      name: 'samples',
      svg: samplesSvg(grids),
      caption: 'Generated images (the probe code) at the snapshot steps',
    });
  }
  for (const f of figures) writeAtomic(join(dir, `${f.name}.png`), svgToPng(f.svg));
  const last = records.at(-1)!;
  const atPoster = POSTER_GAN.map((p) => ({ ...p, record: records.find((r) => r.step === p.step) }));
  const summary = {
    dataset: config.dataset,
    seed: config.seed,
    steps: last.step,
    seconds: last.seconds,
    ceiling: last.ceiling,
    closestToPoster: ranked.slice(0, 5),
    atPosterSteps: atPoster.map((p) => ({
      step: p.step,
      poster: p.snnl,
      measured: p.record
        ? Object.fromEntries(
            Object.entries(p.record.representations).map(([name, r]) => [
              name,
              { optimal: r.optimalLoss, optimalTemperature: r.optimalTemperature, fixed: r.fixed },
            ]),
          )
        : null,
    })),
  };
  writeJsonAtomic(join(dir, 'summary.json'), summary);
  const header = ['representation', ...atPoster.map((p) => `step ${p.step} (poster ${p.snnl})`)];
  const tableRows = available.map((name) => [
    name,
    ...atPoster.map((p) => {
      const r = p.record?.representations[name];
      return r ? `${r.optimalLoss.toFixed(4)} (T ${r.optimalTemperature.toPrecision(3)})` : '-';
    }),
  ]);
  const table = htmlTable(header, tableRows);
  const closest = ranked[0]
    ? `<p>Closest to the poster's four figures: <b>${escape(ranked[0].representation)}</b> at ${ranked[0].setting === 'optimal' ? 'the optimal temperature' : `T = ${escape(ranked[0].setting)}`} (mean absolute difference ${ranked[0].difference.toFixed(3)}). Nothing was tuned to match: every representation and temperature measured is in the figures.</p>`
    : "<p>The study has not reached all four of the poster's steps (0, 400, 800, 2000).</p>";
  const page = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>snnl: real vs generated (${escape(config.dataset)}, seed ${config.seed})</title>
<style>
${PAGE_STYLE}
</style></head><body>
<h1>Real vs generated data: SNNL over a GAN's training</h1>
<p class="meta">${escape(`A DCGAN on ${config.dataset}, ${last.step} of ${config.steps} steps, batch ${config.batchSize}, Adam ${config.lr} (beta1 ${config.beta1}), code ${config.codeSize}, seed ${config.seed}; probe: ${config.probeSize} held-out real test images (label 0) and ${config.probeSize} generated from a fixed code (label 1), ${config.distance} distance; classifier: ${config.classifier ?? 'none'}; backend ${stored.backend}; snnl ${stored.versions.snnl}, commit ${stored.commit ?? 'unknown'}; ${last.seconds.toFixed(0)} s of training.`)}</p>
<p>SNNL at the optimal temperature (the temperature is in parentheses) at the poster's steps. The ceiling, SNNL's limit as T grows, is ${last.ceiling.toFixed(4)} for two sets of ${config.probeSize}: a value near it means real and generated images are as mixed as two random halves.</p>
${table}
${closest}
${figures.map((f) => `<figure id="${f.name}"><img src="${f.name}.png" alt="${escape(f.caption)}"><figcaption>${escape(f.caption)} (${f.name}.png)</figcaption></figure>`).join('\n')}
</body></html>
`;
  const path = join(dir, 'report.html');
  writeAtomic(path, page);
  return path;
}
