/**
 * Figures of a Deep k-NN study: credibility (and maximum softmax) histograms per query set, the
 * reliability diagram, the poster's panel (an image and its adversarial version with their nearest
 * training images in each layer), and t-SNE and UMAP of input-gradient signs.
 */
import type { TopLevelSpec } from 'vega-lite';
import type { ImageSplit } from '../data/datasets.js';
import type { DknnStudy } from '../experiments/dknn.js';
import { tsne2d, umap2d } from './embedding.js';
import { imageSvg, POINTS_BY_CLASS, type Row } from './figures.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';
const CONFIG = { view: { stroke: null }, axis: { labelFontSize: 11, titleFontSize: 12 } };

/** Share of each set in each score bin, one panel per set, credibility and softmax side by side. */
export function scoreHistogramSpec(study: DknnStudy): TopLevelSpec {
  const rows: Row[] = study.sets.flatMap((s) =>
    (['credibility', 'softmax'] as const).flatMap((score) =>
      s[score].histogram.map((n, b) => ({
        set: `${s.name} (${s.count})`,
        score: score === 'credibility' ? 'DkNN credibility' : 'max softmax',
        bin: (b + 0.5) / 10,
        share: n / s.count,
      })),
    ),
  );
  return {
    $schema: SCHEMA,
    title: `Credibility and max softmax per input set (${study.dataset}, factor ${study.factor}, seed ${study.seed})`,
    data: { values: rows },
    facet: {
      column: { field: 'set', type: 'nominal', title: null, sort: study.sets.map((s) => `${s.name} (${s.count})`) },
      row: { field: 'score', type: 'nominal', title: null },
    },
    spec: {
      width: 110,
      height: 90,
      mark: { type: 'bar' },
      encoding: {
        x: { field: 'bin', type: 'quantitative', bin: { step: 0.1, extent: [0, 1] }, title: 'score' },
        y: { field: 'share', type: 'quantitative', title: 'share', scale: { domain: [0, 1] } },
      },
    },
    config: CONFIG,
  } as TopLevelSpec;
}

/** Accuracy per credibility bin against the diagonal, for every labelled set (clean, FGSM). */
export function reliabilitySpec(study: DknnStudy): TopLevelSpec {
  const rows: Row[] = Object.entries(study.reliability).flatMap(([set, bins]) =>
    bins.map((b) => ({ set, credibility: (b.lower + b.upper) / 2, accuracy: b.accuracy, count: b.count })),
  );
  return {
    $schema: SCHEMA,
    title: 'Reliability of DkNN credibility (10 bins; points sized by count)',
    data: { values: rows.filter((r) => r['accuracy'] !== null) },
    width: 260,
    height: 220,
    layer: [
      {
        data: {
          values: [
            { a: 0, b: 0 },
            { a: 1, b: 1 },
          ],
        },
        mark: { type: 'line', color: '#bbb', strokeDash: [4, 4] },
        encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'b', type: 'quantitative' } },
      },
      {
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'credibility', type: 'quantitative', scale: { domain: [0, 1] }, title: 'credibility' },
          y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'accuracy' },
          color: { field: 'set', type: 'nominal' },
          size: { field: 'count', type: 'quantitative', legend: null },
        },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/**
 * Conformal calibration: the clean set's empirical coverage against the nominal 1 - epsilon (on the
 * diagonal when the p-values are valid), with the mean prediction-set size beside it.
 */
export function calibrationSpec(study: DknnStudy): TopLevelSpec {
  const rows = (study.calibrationCurve ?? []).map((c) => ({
    nominal: 1 - c.epsilon,
    coverage: c.coverage,
    size: c.meanSize,
  }));
  return {
    $schema: SCHEMA,
    title: `Prediction sets on clean test images (${study.pValues} p-values${study.mondrian ? ', Mondrian' : ''})`,
    hconcat: [
      {
        width: 240,
        height: 220,
        layer: [
          {
            data: {
              values: [
                { a: 0.5, b: 0.5 },
                { a: 1, b: 1 },
              ],
            },
            mark: { type: 'line', color: '#bbb', strokeDash: [4, 4] },
            encoding: { x: { field: 'a', type: 'quantitative' }, y: { field: 'b', type: 'quantitative' } },
          },
          {
            data: { values: rows },
            mark: { type: 'line', point: true },
            encoding: {
              x: { field: 'nominal', type: 'quantitative', scale: { domain: [0.5, 1] }, title: '1 - epsilon' },
              y: { field: 'coverage', type: 'quantitative', scale: { domain: [0.5, 1] }, title: 'coverage' },
            },
          },
        ],
      },
      {
        width: 240,
        height: 220,
        data: { values: rows },
        mark: { type: 'line', point: true, color: '#e45756' },
        encoding: {
          x: { field: 'nominal', type: 'quantitative', scale: { domain: [0.5, 1] }, title: '1 - epsilon' },
          y: { field: 'size', type: 'quantitative', title: 'mean set size' },
        },
      },
    ],
    config: CONFIG,
  } as TopLevelSpec;
}

/** The poster's panel: each input, then its nearest training images in every layer. */
export function panelSvg(study: DknnStudy, train: ImageSplit, shape: [number, number, number]): string {
  const cell = 2;
  const size = shape[0] * cell;
  const gap = 8;
  const labelWidth = 150;
  const p = study.panel;
  const inputs = [
    { title: `test image #${p.testIndex} (label ${p.label})`, ...p.clean },
    { title: `FGSM eps ${p.eps}`, ...p.adversarial },
  ];
  const neighbors = Object.keys(p.clean.neighbors).length === 0 ? 0 : p.clean.neighbors[study.layers[0]!]!.length;
  const blockWidth = neighbors * (size + 2) + gap;
  const width = labelWidth + size + gap * 2 + study.layers.length * blockWidth;
  const rowHeight = size + 40;
  const height = 40 + inputs.length * rowHeight;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="8" y="16" font-size="13">Nearest training images in each layer (${study.dataset}, factor ${study.factor}, seed ${study.seed})</text>`,
  ];
  study.layers.forEach((layer, l) => {
    parts.push(`<text x="${labelWidth + size + gap * 2 + l * blockWidth}" y="34">${layer}</text>`);
  });
  const trainSize = shape[0] * shape[1] * shape[2];
  inputs.forEach((input, r) => {
    const y = 40 + r * rowHeight;
    parts.push(`<text x="8" y="${y + 12}">${input.title}</text>`);
    parts.push(`<text x="8" y="${y + 28}">prediction ${input.prediction}</text>`);
    parts.push(`<text x="8" y="${y + 44}">credibility ${input.credibility.toFixed(3)}</text>`);
    parts.push(imageSvg(input.pixels, shape, labelWidth, y, cell));
    study.layers.forEach((layer, l) => {
      const x0 = labelWidth + size + gap * 2 + l * blockWidth;
      input.neighbors[layer]!.forEach((index, n) => {
        const pixels = train.images.subarray(index * trainSize, (index + 1) * trainSize);
        parts.push(imageSvg(pixels, shape, x0 + n * (size + 2), y, cell));
        parts.push(`<text x="${x0 + n * (size + 2) + 2}" y="${y + size + 12}">${train.labels[index]}</text>`);
      });
    });
  });
  parts.push('</svg>');
  return parts.join('\n');
}

/** t-SNE and UMAP of input-gradient signs, colored by true label: one row per method, one column per run. */
export function gradientEmbeddingSpec(
  runs: Array<{ label: string; values: Float32Array; labels: Int32Array }>,
  seed: number,
): TopLevelSpec {
  const rows: Row[] = runs.flatMap((run) => {
    const n = run.labels.length;
    const dim = run.values.length / n;
    const vectors = Array.from({ length: n }, (_, i) => Array.from(run.values.subarray(i * dim, (i + 1) * dim)));
    return [
      { method: 't-SNE', points: tsne2d(vectors, seed) },
      { method: 'UMAP', points: umap2d(vectors, seed) },
    ].flatMap(({ method, points }) =>
      points.map((p, i) => ({ run: run.label, method, x: p[0]!, y: p[1]!, class: run.labels[i]! })),
    );
  });
  return {
    $schema: SCHEMA,
    title: 'sign(d cross-entropy / d input) of test images, colored by true label',
    data: { values: rows },
    facet: {
      row: { field: 'method', type: 'nominal', title: null },
      column: { field: 'run', type: 'nominal', title: null, sort: null },
    },
    spec: {
      width: 200,
      height: 200,
      mark: { type: 'circle', size: 12, opacity: 0.8 },
      encoding: POINTS_BY_CLASS,
    },
    resolve: { scale: { x: 'independent', y: 'independent' } },
    config: CONFIG,
  } as TopLevelSpec;
}
