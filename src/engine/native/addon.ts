/**
 * Finds and loads snnl's native addon (native/snnl_native.cc, built against Debian's libtorch-dev by
 * `npm run build:native`). Optional by design: where it is not built, or LibTorch is missing, `loadAddon`
 * says why and the native backend is simply absent.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { NATIVE_CODES, type NativeCodes } from '../../kernel-names.js';

type F = Float32Array;
type Pads = [number, number, number, number];

/**
 * The addon's functions (argument order as in native/snnl_native.cc): each writes into the output
 * array(s) given first, allocated by the caller.
 */
export interface NativeAddon {
  conv2d(
    out: F,
    x: F,
    xShape: number[],
    w: F,
    wShape: number[],
    strides: number[],
    dilations: number[],
    pads: Pads,
    bias: F | null,
    relu: boolean,
    outShape: number[],
  ): void;
  conv2dBackpropInput(
    out: F,
    dy: F,
    dyShape: number[],
    w: F,
    wShape: number[],
    xShape: number[],
    strides: number[],
    dilations: number[],
    pads: Pads,
  ): void;
  conv2dBackpropFilter(
    out: F,
    x: F,
    xShape: number[],
    dy: F,
    dyShape: number[],
    filterShape: number[],
    strides: number[],
    dilations: number[],
    pads: Pads,
  ): void;
  maxPool(
    out: F,
    x: F,
    xShape: number[],
    filter: number[],
    strides: number[],
    dilations: number[],
    pads: Pads,
    outShape: number[],
  ): void;
  maxPoolGrad(
    out: F,
    dy: F,
    dyShape: number[],
    x: F,
    xShape: number[],
    filter: number[],
    strides: number[],
    dilations: number[],
    pads: Pads,
  ): void;
  matMul(
    out: F,
    a: F,
    aShape: number[],
    b: F,
    bShape: number[],
    transposeA: boolean,
    transposeB: boolean,
    bias: F | null,
    biasShape: number[],
    activation: number,
    outShape: number[],
  ): void;
  unary(out: F, op: number, x: F, alpha: number): void;
  binary(out: F, op: number, a: F, aShape: number[], b: F, bShape: number[], outShape: number[]): void;
  reduce(out: F, op: number, x: F, shape: number[], axes: number[]): void;
  transpose(out: F, x: F, shape: number[], perm: number[]): void;
  slice(out: F, x: F, shape: number[], begin: number[], size: number[]): void;
  pad(out: F, x: F, shape: number[], paddings: number[], value: number): void;
  tile(out: F, x: F, shape: number[], reps: number[]): void;
  batchNorm(
    out: F,
    x: F,
    shape: number[],
    mean: F,
    variance: F,
    offset: F | null,
    scale: F | null,
    epsilon: number,
  ): void;
  snnlForward(
    outLoss: F,
    outK: F,
    x: F,
    shape: number[],
    labels: Int32Array,
    distance: number,
    temperature: number,
    epsilon: number,
  ): void;
  snnlBackward(out: F, x: F, shape: number[], k: F, weights: F, distance: number): void;
  snnlRange(out: Float64Array, x: F, shape: number[], distance: number, blockRows: number): void;
  snnlSweep(
    out: Float64Array,
    x: F,
    shape: number[],
    distance: number,
    blockRows: number,
    labels: Int32Array,
    weights: F,
    epsilon: number,
    temperatures: Float64Array,
    derivatives: boolean,
  ): void;
  adam(
    outValue: F,
    outM: F,
    outV: F,
    value: F,
    m: F,
    v: F,
    g: F,
    beta1: number,
    beta2: number,
    lr: number,
    epsilon: number,
    c1: number,
    c2: number,
  ): void;
  /** The k largest of each row of x [rows, cols], largest first, ties in the lower index first. */
  topK(outValues: F, outIndices: Int32Array, x: F, rows: number, cols: number, k: number): void;
  knnMerge(
    outDistances: F,
    outIndices: Int32Array,
    q: F,
    m: number,
    d: number,
    qNorms: F,
    t: F,
    c: number,
    tNorms: F,
    prevDistances: F,
    prevIndices: Int32Array,
    prevK: number,
    k: number,
    offset: number,
  ): void;
  knnExact(
    out: F,
    q: F,
    m: number,
    d: number,
    qNorms: F,
    t: F,
    c: number,
    tNorms: F,
    indices: Int32Array,
    prev: F,
    width: number,
    offset: number,
  ): void;
  knnRefine(
    outDistances: F,
    outIndices: Int32Array,
    outCounts: Int32Array,
    q: F,
    m: number,
    d: number,
    qNorms: F,
    qBounds: F,
    t: F,
    c: number,
    tNorms: F,
    tBounds: F,
    a: number,
    limits: F,
    slack: number,
    prevDistances: F,
    prevIndices: Int32Array,
    prevK: number,
    k: number,
    offset: number,
  ): void;
  /** An orthonormal basis of the columns of y [rows, cols] (QR in double). */
  orthonormalize(out: F, y: F, rows: number, cols: number): void;
  setThreads(n: number): number;
  threads(): number;
  /** The codes of its generic ops, from its C++ enums (checked against src/kernel-names.ts at load). */
  codes(): NativeCodes;
}

/** Where `npm run build:native` leaves the addon, from dist/engine/native or src/engine/native. */
export const ADDON_PATH = join(import.meta.dirname, '..', '..', '..', 'native', 'build', 'Release', 'snnl_native.node');

/** The addon to load: SNNL_NATIVE_ADDON (another build, or a missing file to test without it), else ADDON_PATH. */
export function addonPath(): string {
  return process.env['SNNL_NATIVE_ADDON'] ?? ADDON_PATH;
}

/** How to enable the native backend, for notices and errors. */
export const ENABLE_NATIVE = 'sudo apt-get install libtorch-dev libopenblas0-openmp && npx snnl build-native';

let cached: { addon: NativeAddon } | { reason: string } | undefined;

/** The addon, or why it cannot be used. */
export function loadAddon(): { addon: NativeAddon } | { reason: string } {
  if (cached) return cached;
  const path = addonPath();
  if (!existsSync(path)) {
    cached = { reason: `the native addon is not built (no ${path})` };
  } else {
    try {
      const addon = createRequire(import.meta.url)(path) as NativeAddon;
      const mismatch = codeMismatch(addon);
      cached = mismatch === undefined ? { addon } : { reason: `the native addon is stale (${mismatch}); rebuild it` };
    } catch (error) {
      const message = error instanceof Error ? error.message.split('\n')[0]! : String(error);
      cached = { reason: `the native addon failed to load (${message})` };
    }
  }
  return cached;
}

/** Functions added after the first release: an addon built from older sources lacks them. */
const REQUIRED_FUNCTIONS = [
  'topK',
  'knnMerge',
  'tile',
  'batchNorm',
  'snnlSweep',
  'snnlRange',
  'knnExact',
  'knnRefine',
  'orthonormalize',
] as const;

/** Where the addon's op codes differ from src/kernel-names.ts (an addon built from other sources), if anywhere. */
export function codeMismatch(addon: Partial<NativeAddon>): string | undefined {
  if (typeof addon.codes !== 'function') return 'it does not report its op codes';
  const theirs = addon.codes();
  for (const [table, ours] of Object.entries(NATIVE_CODES) as Array<[keyof NativeCodes, Record<string, number>]>) {
    const names = new Set([...Object.keys(ours), ...Object.keys(theirs[table] ?? {})]);
    for (const name of names) {
      if (theirs[table]?.[name] !== ours[name]) {
        return `${table} op ${name} is ${String(theirs[table]?.[name])} in the addon, ${String(ours[name])} here`;
      }
    }
  }
  const missing = REQUIRED_FUNCTIONS.find((name) => typeof addon[name] !== 'function');
  return missing === undefined ? undefined : `it has no ${missing}()`;
}
