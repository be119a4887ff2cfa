#!/usr/bin/env node
// Why an entangled run of the epsilon form fails to train: for every run under DIR, each hidden layer's
// squared distances on batches of 128 fixed test images (the training batch size), and the share of rows
// whose neighbour weights all together, sum_j exp(-D_ij / T), fall below the form's epsilon 1e-5: there
// the term reads its bound -log(1e-5) = 11.51 whatever the labels, so spreading the rows apart maximizes it
// without mixing the classes. Computed in float64 from the network's float32 features, at --temperature, or
// for a run with the one-step update at the temperature each layer had reached (T0 / its multiplier).
//   node scripts/epsilon-bound.mjs DIR [--temperature 100] [--images 512] [--out FILE.json]
// Needs a build (npm run build) and the runs' checkpoints.
import { writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../dist/engine/backend.js';
import { findRuns } from '../dist/report/report.js';
import { gatherBatch } from '../dist/data/batches.js';
import { evaluationSample } from '../dist/training/evaluate.js';
import { loadTrainedNetwork } from '../dist/training/run-store.js';
import { codeVersion } from '../dist/version.js';
import { loadCheckpoint } from '../dist/training/checkpoint.js';
import { runFiles } from '../dist/training/run-store.js';

const args = process.argv.slice(2);
const flag = (name, fallback) => {
  const at = args.indexOf(name);
  return at >= 0 ? args[at + 1] : fallback;
};
const dir = args[0];
if (!dir || dir.startsWith('--')) {
  console.error('usage: node scripts/epsilon-bound.mjs DIR [--temperature 100] [--images 512] [--out FILE.json]');
  process.exit(2);
}
const T = Number(flag('--temperature', '100'));
const images = Number(flag('--images', '512'));
const EPS = 1e-5;
const BATCH = 128;

await useBackend(process.env.SNNL_BACKEND);

/** Per-row float64 sums of exp(-D/T) over the other rows, and the epsilon form's SNNL, of one batch. */
function batchFigures(rows, dim, labels, T) {
  const n = labels.length;
  const norms = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < dim; k++) s += rows[i * dim + k] ** 2;
    norms[i] = s;
  }
  const distances = [];
  const sums = new Float64Array(n);
  const same = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let d = 0;
      for (let k = 0; k < dim; k++) d += (rows[i * dim + k] - rows[j * dim + k]) ** 2;
      distances.push(d);
      const f = Math.exp(-d / T);
      sums[i] += f;
      sums[j] += f;
      if (labels[i] === labels[j]) {
        same[i] += f;
        same[j] += f;
      }
    }
  }
  let loss = 0;
  let atBound = 0;
  for (let i = 0; i < n; i++) {
    loss += -Math.log(EPS + same[i] / (EPS + sums[i]));
    if (sums[i] < EPS) atBound++;
  }
  return { distances, loss: loss / n, atBound };
}

const median = (v) => {
  const s = Float64Array.from(v).sort();
  return s.length % 2 ? s[(s.length - 1) >> 1] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

const results = [];
for (const run of findRuns(dir)) {
  const { net, dataset, stored } = loadTrainedNetwork(run);
  const { config } = stored;
  const sample = evaluationSample(dataset, images, config.seed);
  // A run with the one-step update trained each layer at T0 / multiplier by its end: measured there too.
  let temperatures = net.hiddenLayers.map(() => T);
  if (config.optimizeTemperature) {
    const { tensors, metadata } = loadCheckpoint(runFiles(run).checkpoint);
    tf.dispose(tensors.map((t) => t.tensor));
    temperatures = net.hiddenLayers.map((_, k) => config.temperature / (metadata.multipliers?.[k] ?? 1));
  }
  const layers = net.hiddenLayers.map((name) => ({ name, distances: [], loss: 0, atBound: 0, batches: 0 }));
  for (let start = 0; start + BATCH <= sample.length; start += BATCH) {
    const batch = gatherBatch(
      dataset.test,
      dataset.imageShape,
      dataset.normalization,
      sample.subarray(start, start + BATCH),
    );
    const outputs = net.model.predict(batch.x);
    net.hiddenLayers.forEach((_, k) => {
      const h = outputs[k];
      const dim = h.size / BATCH;
      const figures = batchFigures(Float64Array.from(h.dataSync()), dim, batch.labels, temperatures[k]);
      const layer = layers[k];
      layer.distances.push(...figures.distances);
      layer.loss += figures.loss;
      layer.atBound += figures.atBound;
      layer.batches += 1;
    });
    tf.dispose([batch.x, batch.y, ...outputs]);
  }
  net.model.dispose();
  const row = {
    run: relative(dir, run),
    factor: config.factor,
    optimizeTemperature: config.optimizeTemperature ?? false,
    layers: Object.fromEntries(
      layers.map((l) => [
        l.name,
        {
          temperature: temperatures[layers.indexOf(l)],
          medianSquaredDistance: median(l.distances),
          epsilonFormSnnl: l.loss / l.batches,
          rowsAtBound: l.atBound / (l.batches * BATCH),
        },
      ]),
    ),
  };
  results.push(row);
  const cells = Object.entries(row.layers).map(
    ([name, l]) =>
      `${name} T ${l.temperature.toPrecision(3)} D~${l.medianSquaredDistance.toPrecision(3)} SNNL ${l.epsilonFormSnnl.toFixed(2)} at bound ${(100 * l.rowsAtBound).toFixed(0)}%`,
  );
  console.log(`${row.run}: ${cells.join('; ')}`);
}
const out = flag('--out');
if (out) {
  const code = codeVersion();
  const document = {
    temperature: T,
    epsilon: EPS,
    batch: BATCH,
    images,
    commit: code.commit,
    dirty: code.dirty,
    runs: results,
  };
  writeFileSync(out, JSON.stringify(document, null, 2) + '\n');
  console.log(`written: ${out}`);
}
