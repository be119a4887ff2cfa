#!/usr/bin/env node
// Batches with partners on a 100-class problem: how many rows of a batch have no same-class partner (and so
// no SNNL term of their own), and how much gradient the loss sends to the batch's embeddings, for random
// batches, class-balanced batches, and random batches against a memory bank.
// Data: 100 classes x 50 points in 32 dimensions (class means N(0, 1), points N(mean, 1)), seeded; the
// embeddings are the points themselves; T = 1/4 of the data's mean squared distance; 200 batches each.
//   node scripts/partners-study.mjs [--out results/partners]      (needs npm run build)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { useBackend, describeBackend } from '../dist/engine/backend.js';
import { snnlDetails } from '../dist/loss/snnl.js';
import { snnlWithReference } from '../dist/loss/reference.js';
import { balancedIndices, MemoryBank } from '../dist/training/samplers.js';
import { permutation, seededRandom } from '../dist/random.js';
import { codeVersion } from '../dist/version.js';

const args = process.argv.slice(2);
const out = args.includes('--out') ? args[args.indexOf('--out') + 1] : 'results/partners';
await useBackend(process.env.SNNL_BACKEND);

const classes = 100;
const perClass = 50;
const d = 32;
const random = seededRandom(2024);
const gauss = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
const means = Array.from({ length: classes }, () => Array.from({ length: d }, gauss));
const labels = Int32Array.from({ length: classes * perClass }, (_, i) => i % classes);
const points = Float32Array.from(
  { length: labels.length * d },
  (_, k) => means[labels[Math.floor(k / d)]][k % d] + gauss(),
);
const x = tf.tensor2d(points, [labels.length, d]);
const meanSquared = tf.tidy(() => tf.mul(tf.sum(tf.moments(x, 0).variance), 2).dataSync()[0]);
const temperature = meanSquared / 4;
const batches = 200;

/** Per batch: rows without a partner (among its neighbours), rows with a term, loss, mean gradient norm per row. */
function measure(indices, bank) {
  return tf.tidy(() => {
    const h = tf.gather(x, Array.from(indices));
    const y = Int32Array.from(indices, (i) => labels[i]);
    const pool = bank?.features ? [...y, ...bank.labels] : [...y];
    let without = 0;
    y.forEach((c, i) => {
      if (!pool.some((l, j) => j !== i && l === c)) without++;
    });
    // The summed loss (every counted row's term at full weight): its gradient is the signal the batch gives.
    const counted = y.length - without;
    const f = (e) =>
      bank
        ? tf.mul(snnlWithReference(e, y, bank.features, bank.features ? bank.labels : null, { temperature }), counted)
        : snnlDetails(e, y, { temperature, reduction: 'sum' }).loss;
    const { value, grad } = tf.valueAndGrad(f)(h);
    const norms = tf.norm(grad, 'euclidean', 1).dataSync();
    return {
      rows: y.length,
      without,
      loss: counted > 0 ? value.dataSync()[0] / counted : 0,
      gradient: norms.reduce((a, v) => a + v, 0) / y.length,
    };
  });
}

function summarize(name, description, results) {
  const rows = results.reduce((a, r) => a + r.rows, 0);
  const without = results.reduce((a, r) => a + r.without, 0);
  return {
    name,
    description,
    batches: results.length,
    rowsPerBatch: results[0].rows,
    withoutPartner: without / rows,
    meanLoss: results.reduce((a, r) => a + r.loss, 0) / results.length,
    gradientPerRow: results.reduce((a, r) => a + r.gradient, 0) / results.length,
  };
}

const randomBatches = (size, seed) => {
  const r = seededRandom(seed);
  return Array.from({ length: batches }, () => permutation(labels.length, r).slice(0, size));
};
const rows = [];
rows.push(
  summarize(
    'random 64',
    'random batches of 64',
    randomBatches(64, 1).map((b) => measure(b)),
  ),
);
rows.push(
  summarize(
    'random 256',
    'random batches of 256',
    randomBatches(256, 2).map((b) => measure(b)),
  ),
);
const balanced = balancedIndices(labels, { classesPerBatch: 16, perClass: 4, seed: 3, batches })(0);
rows.push(
  summarize(
    'balanced 16 x 4',
    '16 classes x 4 examples (64 rows)',
    balanced.map((b) => measure(b)),
  ),
);
// The bank: 1,024 rows of earlier random batches of 64 (filled first), then each batch joins it after use.
const bank = new MemoryBank(1024);
const warm = randomBatches(64, 4);
for (const b of warm.slice(0, 16))
  bank.push(
    tf.gather(x, Array.from(b)),
    Int32Array.from(b, (i) => labels[i]),
  );
const banked = [];
for (const b of randomBatches(64, 5)) {
  banked.push(measure(b, bank));
  const h = tf.gather(x, Array.from(b));
  bank.push(
    h,
    Int32Array.from(b, (i) => labels[i]),
  );
  h.dispose();
}
rows.push(summarize('random 64 + bank 1024', 'random batches of 64 against a memory bank of 1,024 rows', banked));
bank.dispose();

const code = codeVersion();
const result = {
  problem: { classes, perClass, dimensions: d, temperature, batches },
  rows,
  backend: describeBackend(),
  commit: code.commit,
  dirty: code.dirty,
  createdAt: new Date().toISOString(),
};
const pct = (v) => `${(100 * v).toFixed(1)}%`;
const table = [
  `100 classes x 50 points, 32 dimensions; T = ${temperature.toFixed(1)} (1/4 of the mean squared distance); ${batches} batches each.`,
  'Rows without a partner have no term of their own. Mean loss: over the rows with a term. Gradient per row: the',
  "norm of d(sum of the rows' terms)/dh, averaged over all the batch's rows (the signal a batch gives each row).",
  '',
  '| batches | rows | rows without a partner | mean loss | gradient per row |',
  '| --- | --- | --- | --- | --- |',
  ...rows.map(
    (r) =>
      `| ${r.description} | ${r.rowsPerBatch} | ${pct(r.withoutPartner)} | ${r.meanLoss.toFixed(3)} | ${r.gradientPerRow.toExponential(3)} |`,
  ),
  '',
  `Commit ${code.commit}${code.dirty ? ' (with uncommitted changes)' : ''}; ${describeBackend()}.`,
].join('\n');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'table.json'), JSON.stringify(result, null, 2) + '\n');
writeFileSync(join(out, 'table.md'), table + '\n');
console.log(table);
x.dispose();
