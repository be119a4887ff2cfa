/**
 * The real-vs-generated study (snnl gan): a small configuration writes its files, its probe's SNNL equals
 * snnl() and optimalTemperature() on the same tensors, a killed study resumes to the same records, no
 * tensors leak, the summary over seeds, the choice of the representation closest to the poster, and bad
 * input exits 2 with one line before any work. Also the GAN's pieces: shapes, the LeakyReLU gradient.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { ganConfigFromFlags, ganSummaryCommand } from '../src/cli/gan.js';
import { loadDataset } from '../src/data/datasets.js';
import {
  createGanStudy,
  GAN_DEFAULTS,
  GanProbe,
  readGanRecords,
  runGanStudy,
  type GanConfig,
  type GanRecord,
} from '../src/experiments/gan.js';
import { snnl } from '../src/loss/snnl.js';
import { optimalTemperature } from '../src/loss/temperature.js';
import { buildGan } from '../src/models/gan.js';
import { buildNetwork } from '../src/models/models.js';
import { createRun, saveRunState } from '../src/training/run-store.js';
import { configFromFlags } from '../src/cli/train-flags.js';
import { FusedAdamOptimizer } from '../src/training/optimizer.js';
import { buildGanReport, closestToPoster } from '../src/report/gan.js';
import { inputErrorMessage, onBackend } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const root = mkdtempSync(join(tmpdir(), 'snnl-gan-'));
const cli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

const SMALL: GanConfig = {
  ...GAN_DEFAULTS,
  steps: 6,
  batchSize: 8,
  measureEvery: 3,
  probeSize: 24,
  temperatures: [10, 100],
  snapshots: [0, 6],
};

/** A record without its timing (the only field that differs between two runs of the same study). */
const timeless = (r: GanRecord) => ({ ...r, seconds: 0 });

beforeAll(async () => {
  await onBackend('wasm');
});

describe('the GAN', () => {
  it('draws 28x28x1 images in [0, 1] from a code, and scores them with one logit after two hidden layers', () => {
    const gan = buildGan({ codeSize: 16, imageShape: [28, 28, 1] }, 3);
    tf.tidy(() => {
      const images = gan.generator.predict(tf.randomNormal([5, 16])) as tf.Tensor;
      expect(images.shape).toEqual([5, 28, 28, 1]);
      expect(tf.min(images).dataSync()[0]).toBeGreaterThanOrEqual(0);
      expect(tf.max(images).dataSync()[0]).toBeLessThanOrEqual(1);
      const [d1, d2, logit] = gan.discriminator.predict(images) as tf.Tensor[];
      expect([d1!.shape, d2!.shape, logit!.shape]).toEqual([
        [5, 14, 14, 64],
        [5, 7, 7, 128],
        [5, 1],
      ]);
    });
    // Seeded: the same seed gives the same weights.
    const again = buildGan({ codeSize: 16, imageShape: [28, 28, 1] }, 3);
    const a = gan.generator.getWeights()[0]!.dataSync();
    const b = again.generator.getWeights()[0]!.dataSync();
    expect(Array.from(a.slice(0, 20))).toEqual(Array.from(b.slice(0, 20)));
    [gan, again].forEach((g) => {
      g.generator.dispose();
      g.discriminator.dispose();
    });
  });

  it("LeakyReLU's gradient is tfjs-core's where(x > 0, dy, alpha dy)", () => {
    tf.tidy(() => {
      const x = tf.tensor1d([-2, -0.5, 0, 0.3, 4, -1e-20]);
      const dy = tf.tensor1d([1, 2, 3, 4, 5, 6]);
      const [ours] = tf.grads((v: tf.Tensor) => tf.sum(tf.mul(tf.leakyRelu(v, 0.2), dy)))([x]);
      const expected = tf.where(tf.greater(x, 0), dy, tf.mul(dy, 0.2));
      expect(Array.from(ours!.dataSync())).toEqual(Array.from(expected.dataSync()));
    });
  });
});

describe('the probe', () => {
  it('measures SNNL as snnl() and optimalTemperature() do on the same tensors, with the ceiling beside it', () => {
    const dataset = loadDataset('mnist');
    const gan = buildGan({ codeSize: SMALL.codeSize, imageShape: [28, 28, 1] }, 5);
    const probe = new GanProbe(dataset, SMALL, gan);
    const before = tf.memory().numTensors;
    const record = probe.measure();
    expect(tf.memory().numTensors).toBe(before);
    expect(Object.keys(record.representations)).toEqual([
      'pixels',
      'discriminator/d_conv1_act',
      'discriminator/d_conv2_act',
    ]);
    const n = SMALL.probeSize;
    expect(record.ceiling).toBeCloseTo(-Math.log((n - 1) / (2 * n - 1)), 12);
    const images = probe.images();
    const { named, scores } = probe.representations(images);
    for (const [name, h] of named) {
      const r = record.representations[name]!;
      for (const t of SMALL.temperatures) {
        const direct = tf.tidy(
          () => snnl(h, probe.labels, { temperature: t, distance: SMALL.distance }).dataSync()[0]!,
        );
        // The probe takes all its temperatures in one sweep (float32 sums): equal to snnl() within rounding.
        expect(Math.abs(r.fixed[String(t)]! - direct), `${name} at T = ${t}`).toBeLessThan(1e-6 + 1e-5 * direct);
      }
      const best = optimalTemperature(h, probe.labels, { distance: SMALL.distance });
      expect(r.optimalLoss).toBe(best.loss);
      expect(r.optimalTemperature).toBe(best.temperature);
      // The optimal temperature is never worse than a fixed one, nor above the ceiling.
      for (const v of Object.values(r.fixed)) expect(r.optimalLoss).toBeLessThanOrEqual(v + 1e-6);
      expect(r.optimalLoss).toBeLessThanOrEqual(record.ceiling + 1e-6);
    }
    // Real images first (label 0), then the generated ones (label 1).
    expect(Array.from(probe.labels.slice(0, n)).every((y) => y === 0)).toBe(true);
    expect(Array.from(probe.labels.slice(n)).every((y) => y === 1)).toBe(true);
    tf.dispose([images, scores, ...named.values()]);
    probe.dispose();
    gan.generator.dispose();
    gan.discriminator.dispose();
  });
});

describe('a small study', () => {
  const whole = join(root, 'whole');
  let records: GanRecord[];

  beforeAll(async () => {
    createGanStudy(whole, SMALL, 'wasm');
    const before = tf.memory().numTensors;
    records = await runGanStudy(whole, { quiet: true, log: () => undefined });
    // Everything it made is disposed: networks, optimizers, the probe.
    expect(tf.memory().numTensors).toBe(before);
  }, 120_000);

  it('measures at step 0, every N steps and at the end, and writes its files', () => {
    expect(records.map((r) => r.step)).toEqual([0, 3, 6]);
    expect(records[0]!.discriminatorLoss).toBeNull();
    for (const r of records.slice(1)) {
      expect(r.discriminatorLoss).toBeGreaterThan(0);
      expect(r.generatorLoss).toBeGreaterThan(0);
    }
    expect(readGanRecords(whole)).toEqual(records);
    for (const f of ['config.json', 'metrics.jsonl', 'checkpoint.bin', 'snapshots/step-0.bin', 'snapshots/step-6.bin'])
      expect(existsSync(join(whole, f)), f).toBe(true);
  });

  it('resumes a killed study to the same records', async () => {
    const killed = join(root, 'killed');
    createGanStudy(killed, SMALL, 'wasm');
    const partial = await runGanStudy(killed, { quiet: true, log: () => undefined, stopAt: 5 });
    expect(partial.map((r) => r.step)).toEqual([0, 3]);
    const lines: string[] = [];
    const resumed = await runGanStudy(killed, { quiet: true, log: (l) => lines.push(l) });
    expect(lines.join('\n')).toMatch(/resuming .* at step 3 of 6/);
    expect(resumed.map(timeless)).toEqual(records.map(timeless));
  }, 120_000);

  it('draws its report: figures, t-SNE and samples of the snapshots, summary.json', async () => {
    const page = await buildGanReport(whole);
    for (const f of ['snnl-optimal.png', 'snnl-all.png', 'losses.png', 'tsne.png', 'samples.png', 'summary.json'])
      expect(existsSync(join(whole, f)), f).toBe(true);
    const html = readFileSync(page, 'utf8');
    expect(html).toContain('step 0 (poster 0.5617)');
    await expect(buildGanReport(whole, { tsne: 'nowhere' })).rejects.toThrow(/--tsne: no representation 'nowhere'/);
    // The command redraws it on a backend of its own, and names the representation it drew.
    const again = cli('gan-report', whole, '--tsne', 'pixels', '--backend', 'wasm');
    expect(again.status).toBe(0);
    expect(again.stdout).toContain(`report: ${join(whole, 'report.html')}`);
    expect(readFileSync(join(whole, 'report.html'), 'utf8')).toContain('t-SNE of the probe in pixels');
  }, 120_000);

  it('puts seeds side by side: mean and std at the poster steps it reached', () => {
    const table = ganSummaryCommand([whole, join(root, 'killed')]);
    expect(table).toMatch(/\| poster \| \? \| 0\.5617 \| 0\.6196 \| 0\.6208 \| 0\.6487 \|/);
    // Two identical studies: the mean is the value, the spread 0; steps never reached are '-'.
    const pixels = records[0]!.representations['pixels']!.optimalLoss.toFixed(4);
    expect(table).toContain(`| pixels | optimal | ${pixels} +- 0.0000 | - | - | - |`);
  });
});

describe('the representation closest to the poster', () => {
  const record = (step: number, a: number, b: number): GanRecord => ({
    step,
    discriminatorLoss: null,
    generatorLoss: null,
    realScore: 0.5,
    fakeScore: 0.5,
    ceiling: Math.log(2),
    seconds: 0,
    representations: {
      a: { optimalTemperature: 1, optimalLoss: a, fixed: { '10': 0.1 } },
      b: { optimalTemperature: 1, optimalLoss: b, fixed: { '10': 0.6 } },
    },
  });

  it('ranks every representation and temperature by the mean absolute difference from the four figures', () => {
    const records = [0, 400, 800, 2000].map((s, k) => record(s, 0.1 * k, [0.56, 0.62, 0.62, 0.65][k]!));
    const ranked = closestToPoster(records);
    expect(ranked[0]!.representation).toBe('b');
    expect(ranked[0]!.setting).toBe('optimal');
    expect(ranked[0]!.difference).toBeCloseTo((0.0017 + 0.0004 + 0.0008 + 0.0013) / 4, 10);
    expect(ranked).toHaveLength(4);
    expect(closestToPoster(records.slice(0, 3))).toEqual([]);
  });
});

describe('bad input exits 2 with one line before any work', () => {
  const notARun = join(root, 'not-a-run');
  beforeAll(() => {
    writeFileSync(join(root, 'file'), 'x');
  });

  const cases: Array<[string, string[], RegExp]> = [
    ['zero steps', ['--steps', '0'], /--steps: expected a whole number of steps above 0, got '0'/],
    ['a data set of the wrong shape', ['--dataset', 'cifar10'], /the GAN draws 28x28x1 images .*cifar10 has 32x32x3/],
    ['a classifier folder that is not a run', ['--classifier', notARun], /no such run folder/],
    ['a classifier folder without config.json', ['--classifier', root], /not a run folder \(it has no config.json\)/],
    ['a bad temperature', ['--temperatures', '1,-3'], /--temperatures: expected temperatures above 0/],
    [
      'a probe larger than the test split',
      ['--probe-size', '20000'],
      /--probe-size: expected a whole number from 2 to 10000/,
    ],
    [
      'a snapshot past the last step',
      ['--steps', '10', '--snapshots', '0,20'],
      /--snapshots: expected steps from 0 to 10, got 20/,
    ],
    ['an unknown data set', ['--dataset', 'imagenet'], /unknown data set 'imagenet'/],
  ];
  for (const [what, args, message] of cases) {
    it(what, () => {
      const out = join(root, `bad-${what.replace(/\W+/g, '-')}`);
      const result = cli('gan', ...args, '--out', out, '--quiet');
      expect(result.status).toBe(2);
      expect(result.stderr.trim().split('\n')[0]).toMatch(message);
      expect(
        result.stderr
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('(set SNNL_DEBUG')).length,
      ).toBe(1);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('runs from the command line, the default snapshots cut to a short study and its last step', () => {
    const out = join(root, 'cli');
    const args = ['--steps', '4', '--measure-every', '2', '--batch-size', '8', '--probe-size', '20'];
    const result = cli('gan', ...args, '--temperatures', '10', '--out', out, '--quiet', '--backend', 'wasm');
    expect(result.stderr).not.toMatch(/failed/);
    expect(result.status).toBe(0);
    expect(result.stdout).toMatch(/SNNL of real vs generated at the optimal temperature \(ceiling 0\.7\d+\)/);
    expect(readGanRecords(out).map((r) => r.step)).toEqual([0, 2, 4]);
    expect(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).config.snapshots).toEqual([0, 4]);
    expect(existsSync(join(out, 'samples.png'))).toBe(true);
  }, 120_000);

  it('refuses changed settings on resume, and a folder that is not a study', () => {
    const changed = cli('gan', '--resume', join(root, 'whole'), '--steps', '9');
    expect(changed.status).toBe(2);
    expect(changed.stderr).toMatch(/--resume: a resumed study keeps its own settings; drop --steps/);
    const notStudy = cli('gan-report', root);
    expect(notStudy.status).toBe(2);
    expect(notStudy.stderr).toMatch(/not a GAN study folder/);
  });

  it('checks flags in the library too', () => {
    expect(inputErrorMessage(() => ganConfigFromFlags({ measureEvery: '0' }))).toMatch(/--measure-every/);
    expect(inputErrorMessage(() => ganConfigFromFlags({ beta1: '1' }))).toMatch(/--beta1: expected a number from 0/);
  });
});

describe("the generator's batch normalization and the quality records", () => {
  it("'dcgan' normalizes before the generator's ReLUs; 'plain' is the earlier generator", () => {
    const dcgan = buildGan({ codeSize: 16, imageShape: [28, 28, 1] }, 3);
    const plain = buildGan({ codeSize: 16, imageShape: [28, 28, 1], generator: 'plain' }, 3);
    const names = (g: tf.LayersModel) => g.layers.map((l) => l.name);
    expect(names(dcgan.generator)).toEqual(expect.arrayContaining(['g_dense_bn', 'g_up1_bn']));
    expect(names(plain.generator).some((n) => n.endsWith('_bn'))).toBe(false);
    // plain: dense, up1 and image kernels and biases; dcgan: no bias before a normalization, 4 weights per one.
    expect(plain.generator.weights).toHaveLength(6);
    expect(dcgan.generator.weights).toHaveLength(12);
    for (const g of [dcgan, plain]) {
      g.generator.dispose();
      g.discriminator.dispose();
    }
  });

  it('a study with a classifier records the Fréchet distance and the confidence at every measurement', async () => {
    const classifier = join(root, 'classifier');
    const config = configFromFlags({ dataset: 'mnist', model: 'mlp', widths: '16', epochs: '1', trainSubset: '256' });
    createRun(classifier, config, 'wasm');
    const net = buildNetwork('mlp', [28, 28, 1], 10, config.seed, { widths: [16] });
    await saveRunState(classifier, net, new FusedAdamOptimizer(0.001), { epoch: 1, history: [], multipliers: [1] });
    net.model.dispose();
    const dir = join(root, 'with-quality');
    createGanStudy(dir, { ...SMALL, classifier }, 'wasm');
    const records = await runGanStudy(dir, { quiet: true, log: () => undefined });
    for (const r of records) {
      expect(r.quality!.layer).toBe('fc1');
      expect(r.quality!.frechet).toBeGreaterThan(0);
      expect(Number.isFinite(r.quality!.frechet)).toBe(true);
      expect(r.quality!.confidence).toBeGreaterThanOrEqual(0.1);
      expect(r.quality!.confidence).toBeLessThanOrEqual(1);
    }
    const page = await buildGanReport(dir);
    expect(page).toMatch(/quality/);
    expect(existsSync(join(dir, 'quality.png'))).toBe(true);
  }, 120_000);
});
