import * as tf from '@tensorflow/tfjs';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { FASHION_MNIST_DEBIAN_DIR } from '../src/data/datasets.js';
import { InputError } from '../src/errors.js';
import { decodeCheckpoint, encodeCheckpoint } from '../src/training/checkpoint.js';
import { configFromFlags, type TrainFlags } from '../src/cli/train-flags.js';
import type { EpochMetrics } from '../src/training/loop.js';
import { trainRun as train } from '../src/training/run.js';
import { createRun, loadTrainedNetwork, runParts } from '../src/training/run-store.js';
import { inputErrorMessage as inputError, needs, onBackend } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const snnlCli = (...args: string[]) =>
  spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, SNNL_BACKEND: 'wasm' } });

let root: string;
let count = 0;
beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'snnl-train-'));
  await onBackend('wasm');
});

const SMALL: TrainFlags = {
  dataset: 'mnist',
  model: 'mlp',
  widths: '32,32',
  epochs: '2',
  trainSubset: '1024',
  evalSample: '200',
  seed: '7',
};

async function run(flags: TrainFlags, options: Parameters<typeof train>[2] = {}, dir = join(root, `run${count++}`)) {
  createRun(dir, configFromFlags(flags), 'wasm');
  const history = await train(dir, 'wasm', { quiet: true, ...options });
  return { dir, history };
}

/** Metrics without the timings, which differ from run to run. */
const untimed = (history: EpochMetrics[]) => history.map(({ seconds: _s, imagesPerSecond: _i, ...rest }) => rest);

describe('training', () => {
  it('writes config.json, one metrics line per epoch with every hidden layer, and a checkpoint', async () => {
    const { dir, history } = await run({ ...SMALL, factor: '-1', temperature: '50' });
    expect(history).toHaveLength(2);
    const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(Object.keys(lines[1].entanglement)).toEqual(['fc1', 'fc2']);
    expect(lines[1].test.accuracy).toBeGreaterThan(0.2);
    expect(lines[1].entanglement.fc2.temperature).toBe(50);
    expect(lines[1].entanglement.fc2.optimalLoss).toBeLessThanOrEqual(lines[1].entanglement.fc2.loss + 1e-6);
    const stored = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
    expect(stored.config).toMatchObject({ dataset: 'mnist', model: 'mlp', factor: -1, temperature: 50, seed: 7 });
    expect(stored.versions.tfjs).toBe(tf.version.tfjs);
    // The code that made the run: the package's version, and the commit of this checkout (if it is one).
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', 'package.json'), 'utf8'));
    expect(stored.versions.snnl).toBe(pkg.version);
    const head = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: join(import.meta.dirname, '..'), encoding: 'utf8' });
    expect(stored.commit).toBe(head.status === 0 ? head.stdout.trim() : null);
    expect(typeof stored.dirty === 'boolean' || stored.dirty === null).toBe(true);
    expect(existsSync(join(dir, 'checkpoint.bin'))).toBe(true);
  });

  it('reproduces a run with the same seed to the last digit', async () => {
    const a = await run({ ...SMALL, factor: '1' });
    const b = await run({ ...SMALL, factor: '1' });
    expect(untimed(b.history)).toEqual(untimed(a.history));
  });

  it('resumes an interrupted run to the same result as an uninterrupted one', async () => {
    const flags = { ...SMALL, factor: '2', temperature: 'annealed' };
    const whole = await run(flags);
    const dir = join(root, 'resumed');
    createRun(dir, configFromFlags(flags), 'wasm');
    // The first process finishes epoch 1 and dies 3 batches into epoch 2.
    expect(await train(dir, 'wasm', { quiet: true, stopAt: { epoch: 2, batch: 3 } })).toHaveLength(1);
    expect(readMetrics(dir)).toHaveLength(1);
    const resumed = await train(dir, 'wasm', { quiet: true });
    expect(untimed(resumed)).toEqual(untimed(whole.history));
    expect(untimed(readMetrics(dir))).toEqual(untimed(whole.history));
    // summary.json's wall time covers both sittings' epochs, so it is never below the training time.
    const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
    expect(summary.epochs).toBe(2);
    expect(summary.wallSeconds).toBeGreaterThanOrEqual(summary.trainSeconds);
    expect(summary.trainSeconds).toBeCloseTo(
      resumed.reduce((a, m) => a + m.seconds, 0),
      6,
    );
  });

  it('leaks no tensor from epoch to epoch', async () => {
    const counts: number[] = [];
    await run({ ...SMALL, epochs: '3', factor: '1' }, { onEpoch: () => counts.push(tf.memory().numTensors) });
    expect(counts[2]).toBe(counts[1]);
  });

  it('disentangles with --factor 10 and entangles with --factor -1 (optimal-T SNNL of every layer)', async () => {
    const flags = { ...SMALL, widths: '64,64', trainSubset: '3000', epochs: '1' };
    const entanglementOf = async (extra: TrainFlags) => (await run({ ...flags, ...extra })).history[0]!.entanglement;
    const baseline = await entanglementOf({ factor: '0' });
    const apart = await entanglementOf({ factor: '10', temperature: '100' });
    const mixed = await entanglementOf({ factor: '-1' });
    for (const layer of ['fc1', 'fc2']) {
      expect(apart[layer]!.optimalLoss, layer).toBeLessThan(baseline[layer]!.optimalLoss);
      expect(mixed[layer]!.optimalLoss, layer).toBeGreaterThan(baseline[layer]!.optimalLoss);
    }
  });
});

describe('--pixels', () => {
  it("records the pixel scale in config.json and feeds the network [0, 1] pixels with 'unit'", async () => {
    expect(configFromFlags(SMALL).pixels).toBe('normalized');
    const unit = configFromFlags({ ...SMALL, pixels: 'unit' });
    expect(unit.pixels).toBe('unit');
    expect(runParts(unit).dataset.normalization).toEqual({ mean: 0, std: 1 });
    expect(runParts(configFromFlags(SMALL)).dataset.normalization).toEqual({ mean: 0.1307, std: 0.3081 });
    // A run from before the option (no pixels field) keeps the data set's normalization.
    const { pixels: _p, ...old } = configFromFlags(SMALL);
    expect(runParts(old).dataset.normalization).toEqual({ mean: 0.1307, std: 0.3081 });
    const { dir } = await run({ ...SMALL, epochs: '1', pixels: 'unit' });
    expect(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).config.pixels).toBe('unit');
    expect(loadTrainedNetwork(dir).dataset.normalization).toEqual({ mean: 0, std: 1 });
    expect(inputError(() => configFromFlags({ ...SMALL, pixels: 'raw' }))).toBe(
      '--pixels: unknown value "raw"; expected one of normalized, unit',
    );
  });
});

describe('entangling defaults', () => {
  const flags = { dataset: 'mnist', model: 'mlp' };
  it('train the bounded form at a temperature relative to the batch, measured with the stable form', () => {
    expect(configFromFlags({ ...flags, factor: '-1' })).toMatchObject({
      preset: 'cleverhans',
      distance: 'squared-euclidean',
      temperature: 1,
      relativeTemperature: true,
      measure: { preset: 'stable', distance: 'squared-euclidean' },
    });
    // An explicit temperature stays absolute; the form is still bounded.
    const absolute = configFromFlags({ ...flags, factor: '-1', temperature: '100' });
    expect(absolute).toMatchObject({ preset: 'cleverhans', temperature: 100 });
    expect(absolute.relativeTemperature).toBeUndefined();
    // Explicit presets and cosine distance (bounded by itself) are kept as given.
    expect(configFromFlags({ ...flags, factor: '-1', preset: 'stable' })).toMatchObject({
      preset: 'stable',
      temperature: 100,
    });
    const cosine = configFromFlags({ ...flags, factor: '-1', distance: 'cosine' });
    expect(cosine).toMatchObject({ preset: 'stable', distance: 'cosine', temperature: 100 });
    expect(cosine.measure).toBeUndefined();
    // Disentangling is unchanged.
    expect(configFromFlags({ ...flags, factor: '10' })).toMatchObject({ preset: 'stable', temperature: 100 });
    expect(configFromFlags({ ...flags, factor: '10' }).relativeTemperature).toBeUndefined();
  });

  it('warn in one line about an unbounded combination picked explicitly, and train it', () => {
    const out = join(root, 'unbounded');
    const args = ['--dataset', 'mnist', '--model', 'mlp', '--widths', '8', '--epochs', '1', '--train-subset', '256'];
    const result = snnlCli('train', ...args, '--factor', '-1', '--preset', 'stable', '--out', out, '--quiet');
    expect(result.status).toBe(0);
    const warnings = result.stderr.split('\n').filter((l) => l.startsWith('snnl: warning:'));
    expect(warnings).toEqual([
      'snnl: warning: factor -1 maximizes the stable form on squared-euclidean distance, which has no upper bound: ' +
        'the network can raise it by scaling its activations up (leave the preset out for the bounded cleverhans ' +
        'form, or use --distance cosine)',
    ]);
    const quiet = snnlCli('train', ...args, '--factor', '-1', '--out', join(root, 'bounded'), '--quiet');
    expect(quiet.stderr).not.toMatch(/warning/);
  });

  it('--optimize-temperature needs a starting temperature', () => {
    const result = snnlCli(
      'train',
      '--dataset',
      'mnist',
      '--model',
      'mlp',
      '--temperature',
      'annealed',
      '--optimize-temperature',
    );
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/--optimize-temperature: needs a starting temperature/);
  });
});

function readMetrics(dir: string): EpochMetrics[] {
  return readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as EpochMetrics);
}

describe('checkpoints', () => {
  it('round-trip tensors and metadata exactly', () => {
    const a = tf.tensor([1.5, -2, 3e-8], [3]);
    const b = tf.tensor([
      [1, 2],
      [3, 4],
    ]);
    const bytes = encodeCheckpoint(
      [
        { name: 'a', tensor: a },
        { name: 'b', tensor: b },
      ],
      { epoch: 3 },
    );
    const back = decodeCheckpoint<{ epoch: number }>(bytes, 'c.bin');
    expect(back.metadata.epoch).toBe(3);
    expect(back.tensors.map((t) => t.name)).toEqual(['a', 'b']);
    expect(Array.from(back.tensors[0]!.tensor.dataSync())).toEqual(Array.from(a.dataSync()));
    expect(back.tensors[1]!.tensor.shape).toEqual([2, 2]);
    tf.dispose([a, b, ...back.tensors.map((t) => t.tensor)]);
  });

  it('refuse a damaged file, naming it', () => {
    const bytes = encodeCheckpoint([{ name: 'a', tensor: tf.ones([4]) }], {});
    expect(() => decodeCheckpoint(bytes.subarray(0, bytes.length - 4), 'c.bin')).toThrow(
      /c.bin: damaged checkpoint: expected 16 bytes/,
    );
    expect(() => decodeCheckpoint(Uint8Array.from([9, 0, 0, 0, 1, 2]), 'c.bin')).toThrow(InputError);
  });
});

describe('snnl train and evaluate on the command line', () => {
  it('trains, then evaluates on the test split and under the published protocol', () => {
    const dir = join(root, 'cli');
    const trained = snnlCli(
      'train',
      '--dataset',
      'mnist',
      '--model',
      'mlp',
      '--widths',
      '32',
      '--epochs',
      '1',
      '--train-subset',
      '512',
      '--eval-sample',
      '100',
      '--out',
      dir,
    );
    expect(trained.stderr).toMatch(/epoch 1\/1/);
    expect(trained.status).toBe(0);
    expect(trained.stdout).toMatch(/test accuracy \d+\.\d+%/);
    expect(existsSync(join(dir, 'summary.json'))).toBe(true);
    const test = JSON.parse(snnlCli('evaluate', dir, '--json').stdout);
    expect(test).toMatchObject({ protocol: 'test', epoch: 1, examples: 10000 });
    expect(test.accuracy).toBeCloseTo(readMetrics(dir)[0]!.test.accuracy!, 6);
    expect(Object.keys(test.entanglement)).toEqual(['fc1']);
    const published = JSON.parse(snnlCli('evaluate', dir, '--protocol', 'seed-readme', '--json').stdout);
    expect(published).toMatchObject({ protocol: 'seed-readme', examples: 512 });
  });

  it('resume refuses changed settings and finishes a run', () => {
    const dir = join(root, 'cli-resume');
    expect(
      snnlCli(
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
        '--out',
        dir,
      ).status,
    ).toBe(0);
    const changed = snnlCli('train', '--resume', dir, '--epochs', '3');
    expect(changed.status).toBe(2);
    expect(changed.stderr).toMatch(/--resume: a resumed run keeps its own settings; drop --epochs/);
    const again = snnlCli('train', '--resume', dir);
    expect(again.status).toBe(0);
    expect(readMetrics(dir)).toHaveLength(1);
  });

  const bad: Array<[string, string[], RegExp]> = [
    [
      'an unknown model',
      ['--dataset', 'mnist', '--model', 'vgg'],
      /'vgg' is invalid\. Allowed choices are mlp, cnn, cleverhans-cnn, resnet, autoencoder/,
    ],
    [
      'a 32x32x3 model on 28x28 data',
      ['--dataset', 'mnist', '--model', 'resnet'],
      /resnet takes 32x32x3 images \(svhn, cifar10\); this data set has 28x28x1/,
    ],
    [
      'a factor that is not a number',
      ['--dataset', 'mnist', '--model', 'mlp', '--factor', 'ten'],
      /--factor: expected a number/,
    ],
    [
      'a bad temperature',
      ['--dataset', 'mnist', '--model', 'mlp', '--temperature', '-1'],
      /--temperature: expected a number above 0/,
    ],
    [
      'zero epochs',
      ['--dataset', 'mnist', '--model', 'mlp', '--epochs', '0'],
      /--epochs: expected a whole number of epochs above 0/,
    ],
    ['an unknown data set', ['--dataset', 'imagenet', '--model', 'mlp'], /unknown data set 'imagenet'/],
    [
      'a missing data set',
      ['--dataset', 'svhn', '--model', 'cnn', '--data-dir', '/nonexistent'],
      /svhn is not available .*train_32x32\.mat/,
    ],
    [
      'pt-snnl weights on the mlp',
      ['--dataset', 'mnist', '--model', 'mlp', '--layer-weights', 'pt-snnl'],
      /pt-snnl weighting is defined for the cnn model only/,
    ],
    ['no --dataset', ['--model', 'mlp'], /--dataset: required/],
    ['resuming a folder that is no run', ['--resume', '/tmp'], /\/tmp: not a run folder/],
  ];
  it.each(bad)('%s exits 2 before any work', (_name, args, pattern) => {
    const result = snnlCli('train', ...args);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(pattern);
    expect(result.stderr).not.toMatch(/epoch 1/);
  });

  it('an --out that is a file exits 2', () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const result = snnlCli('train', '--dataset', 'mnist', '--model', 'mlp', '--out', file);
    expect(result.status).toBe(2);
    expect(result.stderr).toMatch(/a-file is a file, not a folder/);
  });
});

describe('the REFERENCE CNN', () => {
  needs(existsSync(FASHION_MNIST_DEBIAN_DIR), 'Debian package dataset-fashion-mnist is not installed')(
    'trains on Fashion-MNIST with SNNL on every hidden layer and resumes after an interruption',
    async () => {
      const flags: TrainFlags = {
        dataset: 'fashion-mnist',
        model: 'cnn',
        epochs: '1',
        trainSubset: '256',
        batchSize: '64',
        evalSample: '64',
        factor: '-10',
        temperature: '100',
        distance: 'cosine',
        preset: 'pt-snnl',
        layerWeights: 'pt-snnl',
      };
      const dir = join(root, 'cnn');
      createRun(dir, configFromFlags(flags), 'wasm');
      expect(await train(dir, 'wasm', { quiet: true, stopAt: { epoch: 1, batch: 2 } })).toHaveLength(0);
      expect(existsSync(join(dir, 'metrics.jsonl'))).toBe(false);
      const history = await train(dir, 'wasm', { quiet: true });
      expect(Object.keys(history[0]!.entanglement)).toEqual(['conv1', 'conv2', 'fc1', 'fc2', 'fc3']);
      expect(readMetrics(dir)).toHaveLength(1);
    },
    120_000,
  );
});
