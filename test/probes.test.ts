/**
 * Probes of chosen layers while a network trains (snnl train --probe-layers), and images padded to
 * another shape (--input-shape): the layers of a ResNet's final block, when probes are taken, values equal
 * to optimalTemperature() on the same layer outputs, probes kept and retaken across a resume, and errors.
 */
import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { configFromFlags, type TrainFlags } from '../src/cli/train-flags.js';
import { loadDataset, type Dataset } from '../src/data/datasets.js';
import { withImageShape } from '../src/data/reshape.js';
import { gatherBatch } from '../src/data/batches.js';
import { optimalTemperature } from '../src/loss/temperature.js';
import { buildNetwork } from '../src/models/models.js';
import { evaluationSample } from '../src/training/evaluate.js';
import { finalBlockLayers, LayerProbe, probeBatches, readProbes, resolveProbeLayers } from '../src/training/probes.js';
import { trainRun } from '../src/training/run.js';
import { createRun, runFiles } from '../src/training/run-store.js';
import { inputErrorMessage, onBackend } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const cli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SNNL_BACKEND: 'wasm' } });
const root = mkdtempSync(join(tmpdir(), 'snnl-probes-'));

beforeAll(async () => {
  await onBackend('wasm');
});

describe('images drawn at another shape', () => {
  const tiny: Dataset = {
    name: 'tiny',
    imageShape: [2, 2, 1],
    classes: 2,
    normalization: { mean: 0, std: 1 },
    train: { images: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]), labels: Uint8Array.from([0, 1]), count: 2 },
    test: { images: Uint8Array.from([9, 10, 11, 12]), labels: Uint8Array.from([1]), count: 1 },
  };

  it('centres each image on a black canvas and repeats its channel', () => {
    const padded = withImageShape(tiny, [4, 4, 3]);
    expect(padded.imageShape).toEqual([4, 4, 3]);
    const image = Array.from(padded.train.images.subarray(48, 96));
    const at = (y: number, x: number) => image.slice((y * 4 + x) * 3, (y * 4 + x) * 3 + 3);
    expect(at(1, 1)).toEqual([5, 5, 5]);
    expect(at(1, 2)).toEqual([6, 6, 6]);
    expect(at(2, 1)).toEqual([7, 7, 7]);
    expect(at(2, 2)).toEqual([8, 8, 8]);
    expect(image.reduce((a, v) => a + v, 0)).toBe(3 * (5 + 6 + 7 + 8));
    expect(Array.from(padded.train.labels)).toEqual([0, 1]);
    expect(withImageShape(tiny, [2, 2, 1])).toBe(tiny);
  });

  it('refuses a smaller canvas, or channels that do not repeat', () => {
    expect(inputErrorMessage(() => withImageShape(tiny, [1, 4, 1]))).toMatch(/tiny's 2x2x1 images can be padded/);
    const rgb = { ...tiny, imageShape: [2, 2, 3] as [number, number, number] };
    expect(inputErrorMessage(() => withImageShape(rgb, [4, 4, 1]))).toMatch(/not drawn at 4x4x1/);
  });
});

describe('which layers, and when', () => {
  it("names every layer of a ResNet's last residual block, in order", () => {
    const net = buildNetwork('resnet', [32, 32, 3], 10, 1, { blocks: 2 });
    expect(finalBlockLayers(net)).toEqual([
      's3b2_conv1',
      's3b2_bn1',
      's3b2_relu1',
      's3b2_conv2',
      's3b2_bn2',
      's3b2_add',
      's3b2_out',
    ]);
    expect(inputErrorMessage(() => resolveProbeLayers(net, ['s3b2_add', 'nowhere']))).toMatch(
      /unknown layer nowhere; resnet has stem, stem_bn/,
    );
    net.model.dispose();
    const mlp = buildNetwork('mlp', [28, 28, 1], 10, 1);
    expect(inputErrorMessage(() => finalBlockLayers(mlp))).toMatch(
      /'final-block' names a ResNet's last residual block/,
    );
    mlp.model.dispose();
  });

  it('spreads the probes of an epoch over its batches, the last at its end', () => {
    expect([...probeBatches(10, 3)]).toEqual([3, 7, 10]);
    expect([...probeBatches(2, 5)]).toEqual([1, 2]);
    expect([...probeBatches(8, 1)]).toEqual([8]);
  });
});

describe('a probe', () => {
  it('measures each layer as optimalTemperature() does on that layer, in inference mode, and leaks nothing', () => {
    const dataset = withImageShape(loadDataset('mnist'), [32, 32, 3]);
    const net = buildNetwork('resnet', [32, 32, 3], 10, 3, { blocks: 1 });
    const sample = evaluationSample(dataset, 40, 3);
    const layers = finalBlockLayers(net);
    const options = { distance: 'squared-euclidean' as const, preset: 'stable' as const };
    const probe = new LayerProbe(net, dataset, layers, sample, options);
    const before = tf.memory().numTensors;
    const measured = probe.measure();
    expect(tf.memory().numTensors).toBe(before);
    const batch = gatherBatch(dataset.test, dataset.imageShape, dataset.normalization, sample);
    const model = tf.model({
      inputs: net.model.inputs,
      outputs: net.model.getLayer('s3b1_add').output as tf.SymbolicTensor,
    });
    const h = tf.tidy(() => tf.reshape(model.predict(batch.x) as tf.Tensor, [40, -1]));
    const direct = optimalTemperature(h, batch.labels, options);
    expect(measured['s3b1_add']!.optimalLoss).toBeCloseTo(direct.loss, 6);
    expect(measured['s3b1_add']!.optimalTemperature).toBeCloseTo(direct.temperature, 2);
    expect(Object.keys(measured)).toEqual(layers);
    tf.dispose([h, batch.x, batch.y]);
    probe.dispose();
    net.model.dispose();
  });
});

describe('snnl train with probes', () => {
  const flags: TrainFlags = {
    dataset: 'mnist',
    model: 'mlp',
    widths: '32,32',
    epochs: '2',
    trainSubset: '1024',
    evalSample: '100',
    seed: '5',
    probeLayers: 'fc1,fc2,logits',
    probesPerEpoch: '3',
    probeSize: '100',
  };

  it('probes before training and three times an epoch, and a killed run retakes only the unfinished epoch', async () => {
    const whole = join(root, 'whole');
    createRun(whole, configFromFlags(flags), 'wasm');
    await trainRun(whole, 'wasm', { quiet: true });
    const probes = readProbes(runFiles(whole).probes);
    // 8 batches an epoch: probes after batches 3, 5 and 8.
    expect(probes.map((p) => p.progress)).toEqual([0, 3 / 8, 5 / 8, 1, 1 + 3 / 8, 1 + 5 / 8, 2]);
    expect(Object.keys(probes[0]!.layers)).toEqual(['fc1', 'fc2', 'logits']);
    for (const p of probes) for (const l of Object.values(p.layers)) expect(l.optimalLoss).toBeGreaterThanOrEqual(0);
    // Training separates the classes: the last layer's SNNL falls.
    expect(probes.at(-1)!.layers['logits']!.optimalLoss).toBeLessThan(probes[0]!.layers['logits']!.optimalLoss);

    const killed = join(root, 'killed');
    createRun(killed, configFromFlags(flags), 'wasm');
    await trainRun(killed, 'wasm', { quiet: true, stopAt: { epoch: 2, batch: 6 } });
    expect(readProbes(runFiles(killed).probes).map((p) => p.progress)).toEqual([
      0,
      3 / 8,
      5 / 8,
      1,
      1 + 3 / 8,
      1 + 5 / 8,
    ]);
    await trainRun(killed, 'wasm', { quiet: true, log: () => undefined });
    expect(readProbes(runFiles(killed).probes)).toEqual(probes);
  }, 120_000);

  it('says which file holds them', () => {
    const out = join(root, 'cli');
    const result = cli(
      'train',
      '--dataset',
      'mnist',
      '--model',
      'mlp',
      '--widths',
      '16',
      '--epochs',
      '1',
      '--train-subset',
      '256',
      '--eval-sample',
      '50',
      '--probe-layers',
      'fc1',
      '--probes-per-epoch',
      '2',
      '--probe-size',
      '50',
      '--out',
      out,
      '--quiet',
    );
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('probes.jsonl (one line per probe)');
    expect(readFileSync(join(out, 'probes.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
    // The run's report draws them.
    const report = cli('report', out, '--points', '100');
    expect(report.status).toBe(0);
    expect(existsSync(join(out, 'probes.png'))).toBe(true);
    expect(readFileSync(join(out, 'report.html'), 'utf8')).toContain('id="probes"');
  }, 60_000);
});

describe('bad probe and shape flags exit 2 with one line before any work', () => {
  const base = ['train', '--dataset', 'mnist', '--model', 'mlp', '--quiet'];
  const cases: Array<[string, string[], RegExp]> = [
    ['probes per epoch without layers', ['--probes-per-epoch', '4'], /--probes-per-epoch: needs --probe-layers/],
    [
      'an unknown layer',
      ['--probe-layers', 'fc1,conv9'],
      /--probe-layers: unknown layer conv9; mlp has flatten, fc1, fc2, logits/,
    ],
    [
      'the final block of a network without one',
      ['--probe-layers', 'final-block'],
      /'final-block' names a ResNet's last/,
    ],
    [
      'zero probes per epoch',
      ['--probe-layers', 'fc1', '--probes-per-epoch', '0'],
      /--probes-per-epoch: expected a whole number above 0/,
    ],
    [
      'a shape that is not one',
      ['--input-shape', '32x32'],
      /--input-shape: expected HEIGHTxWIDTHxCHANNELS such as 32x32x3, got '32x32'/,
    ],
    ['a smaller shape', ['--input-shape', '20x20x1'], /--input-shape: mnist's 28x28x1 images can be padded/],
  ];
  for (const [what, args, message] of cases) {
    it(what, () => {
      const out = join(root, `bad-${what.replace(/\W+/g, '-')}`);
      const result = cli(...base, ...args, '--out', out);
      expect(result.status).toBe(2);
      expect(result.stderr.trim().split('\n')[0]).toMatch(message);
    });
  }

  it('tells a ResNet user with 28x28x1 data how to pad it', () => {
    const result = cli('train', '--dataset', 'mnist', '--model', 'resnet', '--out', join(root, 'resnet'));
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/snnl train --input-shape 32x32x3 pads it/);
  });
});
