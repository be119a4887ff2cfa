/**
 * Figures as vega-lite specifications, rendered to SVG without a browser (vega's headless view) and to
 * PNG (resvg). One function per figure; each takes plain rows and returns a spec.
 */
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

export type Row = Record<string, string | number | null>;

export async function toSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

export function svgToPng(svg: string): Uint8Array {
  const png = new Resvg(svg, {
    background: 'white',
    fitTo: { mode: 'zoom', value: 2 },
    font: { loadSystemFonts: true },
  })
    .render()
    .asPng();
  return new Uint8Array(png);
}

/** The look every figure shares (axis and legend fonts, no frame). */
export const CONFIG = {
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12 },
  legend: { labelFontSize: 11, labelLimit: 320 },
};

const count = (rows: Row[], field: string) => new Set(rows.map((r) => r[field])).size;

/**
 * How runs are told apart: by color when each run is its own configuration; with several data sets or
 * seeds, color is the configuration (a handful of legend entries instead of one per run), each run is
 * its own line (one per seed), and data sets get a row of panels each.
 */
function runEncoding(rows: Row[]) {
  const grouped = rows.length > 0 && 'config' in rows[0]! && (count(rows, 'dataset') > 1 || count(rows, 'seed') > 1);
  return {
    grouped,
    byDataset: grouped && count(rows, 'dataset') > 1,
    note: grouped && count(rows, 'seed') > 1 ? ' (one line per seed)' : '',
    encoding: grouped
      ? {
          color: { field: 'config', type: 'nominal', title: 'configuration' },
          detail: { field: 'run', type: 'nominal' },
        }
      : { color: { field: 'run', type: 'nominal', title: 'run' } },
  };
}

/** A line per (run, layer) of a per-epoch quantity, one panel per layer (and per data set). */
export function curvesSpec(rows: Row[], y: string, title: string, yTitle: string): TopLevelSpec {
  const runs = runEncoding(rows);
  const column = { field: 'layer', type: 'nominal', sort: null, title: null };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: title + runs.note,
    data: { values: rows },
    facet: runs.byDataset ? { row: { field: 'dataset', type: 'nominal', title: null }, column } : { column },
    spec: {
      width: 170,
      height: 150,
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'epoch', type: 'quantitative', title: 'epoch', axis: { tickMinStep: 1 } },
        y: { field: y, type: 'quantitative', title: yTitle, scale: { zero: false } },
        ...runs.encoding,
      },
    },
    resolve: runs.byDataset ? { scale: { y: 'independent' } } : undefined,
    config: CONFIG,
  } as TopLevelSpec;
}

/** Probed layers over training (snnl train --probe-layers): one line per layer, one panel per run. */
export function probesSpec(rows: Row[]): TopLevelSpec {
  const runs = count(rows, 'run');
  const spec = {
    width: 420,
    height: 240,
    mark: { type: 'line', point: { size: 14 } },
    encoding: {
      x: { field: 'progress', type: 'quantitative', title: 'epochs of training' },
      y: { field: 'snnl', type: 'quantitative', title: 'SNNL at the optimal temperature', scale: { zero: false } },
      color: { field: 'layer', type: 'nominal', title: 'layer', sort: null },
    },
  };
  const title = 'SNNL of the probed layers over training (fixed test images, inference mode)';
  return (
    runs > 1
      ? {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          facet: { field: 'run', type: 'nominal', title: null },
          columns: 2,
          spec: { ...spec, width: 300, height: 200 },
          config: CONFIG,
        }
      : {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          ...spec,
          config: CONFIG,
        }
  ) as TopLevelSpec;
}

/** Test accuracy per epoch, one line per run (one panel per data set). */
export function accuracySpec(rows: Row[]): TopLevelSpec {
  const runs = runEncoding(rows);
  const spec = {
    width: 320,
    height: 180,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'epoch', type: 'quantitative', axis: { tickMinStep: 1 } },
      y: { field: 'accuracy', type: 'quantitative', title: 'accuracy (%)', scale: { zero: false } },
      ...runs.encoding,
    },
  };
  const title = 'Test accuracy (real test split)' + runs.note;
  return (
    runs.byDataset
      ? {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          facet: { column: { field: 'dataset', type: 'nominal', title: null } },
          spec,
          resolve: { scale: { y: 'independent' } },
          config: CONFIG,
        }
      : {
          $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
          title,
          data: { values: rows },
          ...spec,
          config: CONFIG,
        }
  ) as TopLevelSpec;
}

/** A 2-D embedding's points (fields x, y, class), colored by class, without axes. */
export const POINTS_BY_CLASS = {
  x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false } },
  y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false } },
  color: { field: 'class', type: 'nominal', scale: { scheme: 'category10' } },
};

/** 2-D embeddings of each hidden layer, one row of panels per run, colored by class. */
export function embeddingSpec(rows: Row[], method: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `${method} of each hidden layer's representation of test images, colored by class`,
    data: { values: rows },
    facet: {
      row: { field: 'run', type: 'nominal', title: null, sort: null },
      column: { field: 'layer', type: 'nominal', title: null, sort: null },
    },
    spec: {
      width: 160,
      height: 160,
      mark: { type: 'circle', size: 9, opacity: 0.75 },
      encoding: POINTS_BY_CLASS,
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Frames of the toy: points moving under SNNL gradient descent, one panel per step, one row per sign. */
export function framesSpec(rows: Row[], title: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values: rows },
    facet: {
      row: { field: 'direction', type: 'nominal', title: null, sort: null },
      column: { field: 'step', type: 'ordinal', title: 'gradient step' },
    },
    spec: {
      width: 130,
      height: 130,
      layer: [
        {
          mark: { type: 'circle', size: 14, opacity: 0.8 },
          encoding: {
            x: { field: 'x', type: 'quantitative', axis: null, scale: { zero: false } },
            y: { field: 'y', type: 'quantitative', axis: null, scale: { zero: false } },
            color: { field: 'class', type: 'nominal', scale: { scheme: 'category10' } },
          },
        },
        {
          mark: { type: 'text', align: 'left', baseline: 'top', fontSize: 11, x: 2, y: 2 },
          encoding: { text: { field: 'label', type: 'nominal' } },
        },
      ],
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}

/** One image (bytes 0-255, NHWC) as SVG rectangles: a black background, one rect per lit pixel. */
export function imageSvg(
  pixels: ArrayLike<number>,
  shape: [number, number, number],
  x: number,
  y: number,
  cell: number,
): string {
  const [h, w, c] = shape;
  const parts = [`<rect x="${x}" y="${y}" width="${w * cell}" height="${h * cell}" fill="black"/>`];
  for (let r = 0; r < h; r++) {
    for (let col = 0; col < w; col++) {
      const at = (r * w + col) * c;
      const rgb = c === 3 ? [pixels[at]!, pixels[at + 1]!, pixels[at + 2]!] : [pixels[at]!, pixels[at]!, pixels[at]!];
      if (rgb.every((v) => v < 8)) continue;
      parts.push(
        `<rect x="${x + col * cell}" y="${y + r * cell}" width="${cell}" height="${cell}" fill="rgb(${rgb.map((v) => Math.round(v)).join(',')})"/>`,
      );
    }
  }
  return parts.join('');
}
