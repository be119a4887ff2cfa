/**
 * Kernels registered on top of the wasm backend's own, where its stock kernels are slow or missing
 * (tfjs-backend-wasm 4.22; measured on this machine, ../shared/REFERENCE.md section 5):
 *
 * - BatchMatMul with a transposed operand runs a naive loop (1-3.5 GFLOP/s against about 33-42 for the
 *   plain product). A transpose is a memory pass: transpose explicitly, then call the fast product;
 *   for a b^T with a large b (a layer's input gradient dy W^T), compute (b a^T)^T instead.
 * - Conv2DBackpropFilter is not registered at all, so no CNN can train. The filter gradient is itself a
 *   convolution: of the input with batch and channels swapped, by dy as the filter, stride 1 and
 *   dilation = the forward stride, run by the backend's fast (XNNPACK) Conv2D.
 * - Conv2DBackpropInput is a naive loop. Two ways replace it, chosen per call by their cost: a set of
 *   stride-1 convolutions of dy, one per stride phase, with the matching taps of the flipped filter; or
 *   one product dy W^T into columns added back into their windows (see below).
 * - MaxPoolGrad is a naive loop. The backend's MaxPoolWithArgmax finds where each window's maximum
 *   came from, and ScatterNd adds dy there (overlapping windows add up, as the gradient does).
 *
 * Kernels are data: each entry wraps the backend's original kernel function, and `installWasmKernels`
 * registers them once.
 */
import {
  backend_util,
  BatchMatMul,
  Conv2D,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  Fill,
  Identity,
  MaxPoolGrad,
  MaxPoolWithArgmax,
  Pack,
  ScatterNd,
  PadV2,
  Reshape,
  Slice,
  Sum,
  getKernel,
  registerKernel,
  slice_util,
  util,
  unregisterKernel,
  Transpose,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  type NamedAttrMap,
} from '@tensorflow/tfjs-core';
import { RELU_GRAD, registerReluGradient } from './relu-grad.js';
import {
  col2imOnHeap,
  im2colTOnHeap,
  type Col2imGeometry,
  reluGradOnHeap,
  runtimeOf,
  SUM_CHUNK,
  sumRowsOnHeap,
  transposeBlocksOnHeap,
  transposeOnHeap,
} from './wasm-runtime.js';
import { wasmSnnlKernels } from './wasm-snnl.js';

interface WasmLike {
  disposeData(dataId: object): boolean | void;
}

/** The wasm backend's heap access: outputs allocated on its heap, and views of them. */
interface WasmHeap extends WasmLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

type KernelArgs = Parameters<KernelFunc>[0];

function originalConfig(name: string): KernelConfig {
  const config = getKernel(name, 'wasm');
  if (config === undefined) throw new Error(`the wasm backend has no ${name} kernel to build on`);
  return config;
}

function original(name: string): KernelFunc {
  return originalConfig(name).kernelFunc;
}

/** Swaps the last two axes of `x` with the backend's transpose kernel. */
function swapLastAxes(transpose: KernelFunc, x: TensorInfo, backend: unknown): TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return transpose({ inputs: { x }, backend, attrs: { perm } } as KernelArgs) as TensorInfo;
}

const sizeOf = (t: TensorInfo) => t.shape.reduce((p, n) => p * n, 1);

/**
 * For a b^T: whether (b a^T)^T moves less memory. Directly, b is transposed and then packed by the
 * product (2|b|); swapped, a is transposed and packed and the result transposed (2|a| + |out|).
 */
function preferSwapped(a: TensorInfo, b: TensorInfo): boolean {
  const rowsA = a.shape[a.shape.length - 2]!;
  const rowsB = b.shape[b.shape.length - 2]!;
  const batch = Math.max(sizeOf(a) / (rowsA * a.shape.at(-1)!), sizeOf(b) / (rowsB * b.shape.at(-1)!));
  return 2 * sizeOf(a) + batch * rowsA * rowsB < 2 * sizeOf(b);
}

/** Right operands the fast product has seen: it keeps their packed form, keyed by the tensor. */
const packed = new WeakSet<object>();

/**
 * The fast product packs its right operand (transposing it, single-threaded, ~3.7 ns an element) on
 * first use and keeps the packed copy for that tensor. For a large fresh b that packing dominates;
 * swapped, the packed operand is a^T and the transposes are snnl's (~0.5 ns an element). Measured
 * (tfjs-backend-wasm 4.22, 2 threads), direct against swapped: 128x3200 by 3200x1024 42 / 15 ms,
 * 128x1024 by 1024x1024 10.4 / 5.1, by 1024x512 3.9 / 3.2, 128x500 by 500x500 1.7 / 1.6, 128x512 by
 * 512x10 0.06 / 0.28.
 */
function packingIsSlow(a: TensorInfo, b: TensorInfo): boolean {
  const k = b.shape.at(-2)!;
  const n = b.shape.at(-1)!;
  const m = a.shape.at(-2)!;
  return k * n >= 256 * 1024 && m <= n;
}

function batchMatMulConfig(transpose: KernelFunc): KernelConfig {
  const stock = originalConfig(BatchMatMul);
  const matMul = stock.kernelFunc;
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const { transposeA, transposeB } = (attrs ?? {}) as NamedAttrMap & {
      transposeA: boolean;
      transposeB: boolean;
    };
    const wasm = backend as unknown as WasmLike;
    if (!transposeA && !transposeB) {
      const b = inputs.b!;
      const first = !packed.has(b.dataId);
      packed.add(b.dataId);
      if (!first || !packingIsSlow(inputs.a!, b)) return matMul(args);
      // a b = (b^T a^T)^T: a^T becomes the packed operand, and b is moved once by a transpose.
      const bt = swapLastAxes(transpose, b, backend);
      const at = swapLastAxes(transpose, inputs.a!, backend);
      const product = matMul({
        inputs: { a: bt, b: at },
        backend,
        attrs: { transposeA: false, transposeB: false },
      } as KernelArgs) as TensorInfo;
      try {
        return swapLastAxes(transpose, product, backend);
      } finally {
        for (const t of [bt, at, product]) wasm.disposeData(t.dataId);
      }
    }
    if (transposeB && !transposeA && preferSwapped(inputs.a!, inputs.b!)) {
      // a b^T = (b a^T)^T: transposing a and the product can move far less memory than transposing b
      // (the fast product also packs its right operand, so b would be moved twice).
      const at = swapLastAxes(transpose, inputs.a!, backend);
      const product = matMul({
        inputs: { a: inputs.b!, b: at },
        backend,
        attrs: { transposeA: false, transposeB: false },
      } as KernelArgs) as TensorInfo;
      try {
        return swapLastAxes(transpose, product, backend);
      } finally {
        wasm.disposeData(at.dataId);
        wasm.disposeData(product.dataId);
      }
    }
    const a = transposeA ? swapLastAxes(transpose, inputs.a!, backend) : inputs.a!;
    const b = transposeB ? swapLastAxes(transpose, inputs.b!, backend) : inputs.b!;
    try {
      return matMul({ inputs: { a, b }, backend, attrs: { transposeA: false, transposeB: false } } as KernelArgs);
    } finally {
      if (transposeA) wasm.disposeData(a.dataId);
      if (transposeB) wasm.disposeData(b.dataId);
    }
  };
  // Keep the stock setupFunc: it binds the wasm entry point that `matMul` calls.
  return { ...stock, kernelFunc };
}

/**
 * Runs the backend's own kernels one after another, freeing every intermediate result but the one
 * returned: the building block of composed kernels.
 */
class Composer {
  private readonly temporaries: TensorInfo[] = [];
  constructor(private readonly backend: unknown) {}

  /** Runs a kernel; Pack takes its inputs as a list, every other kernel by name. */
  run(name: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: object = {}): TensorInfo {
    const kernel = getKernel(name, 'wasm');
    if (kernel === undefined) throw new Error(`the wasm backend has no ${name} kernel to build on`);
    const out = kernel.kernelFunc({ inputs, backend: this.backend, attrs } as KernelArgs) as TensorInfo;
    this.temporaries.push(out);
    return out;
  }

  /** Runs a kernel with several outputs. */
  runAll(name: string, inputs: Record<string, TensorInfo>, attrs: object = {}): TensorInfo[] {
    const kernel = getKernel(name, 'wasm');
    if (kernel === undefined) throw new Error(`the wasm backend has no ${name} kernel to build on`);
    const outs = kernel.kernelFunc({ inputs, backend: this.backend, attrs } as KernelArgs) as TensorInfo[];
    this.temporaries.push(...outs);
    return outs;
  }

  /** Adopts a result made outside `run` as an intermediate. */
  keep(t: TensorInfo): TensorInfo {
    this.temporaries.push(t);
    return t;
  }

  /** Frees the intermediates and returns `result`. */
  finish(result: TensorInfo): TensorInfo {
    const wasm = this.backend as WasmLike;
    for (const t of this.temporaries) if (t !== result) wasm.disposeData(t.dataId);
    return result;
  }
}

interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

function checkNhwc(attrs: ConvAttrs, kernel: string): void {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm supports NHWC data only, got ${attrs.dataFormat}`);
  }
}

/** dW = conv(x^T, dy^T) with stride 1 and dilation = stride, padded so the output is the filter's size. */
function backpropFilterByConv(
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const { filterHeight: fh, filterWidth: fw } = info;
  const c = new Composer(backend);
  const [, height, width] = x.shape as [number, number, number, number];
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  // Padding after the input so that the output has exactly fh x fw positions; negative = rows never read.
  let bottom = fh + (oh - 1) * sh - height - top;
  let right = fw + (ow - 1) * sw - width - left;
  let xt = c.run(Transpose, { x }, { perm: [3, 1, 2, 0] }); // [cin, H, W, n]
  if (bottom < 0 || right < 0) {
    const size = [-1, height + Math.min(0, bottom), width + Math.min(0, right), -1];
    xt = c.run(Slice, { x: xt }, { begin: [0, 0, 0, 0], size });
    bottom = Math.max(0, bottom);
    right = Math.max(0, right);
  }
  const dyt = c.run(Transpose, { x: dy }, { perm: [1, 2, 0, 3] }); // [oh, ow, n, cout] as a filter
  const pad: backend_util.ExplicitPadding = [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  const conv = c.run(Conv2D, { x: xt, filter: dyt }, { strides: 1, pad, dilations: [sh, sw], dataFormat: 'NHWC' });
  return c.finish(c.run(Transpose, { x: conv }, { perm: [1, 2, 0, 3] })); // [fh, fw, cin, cout]
}

/** Conv2DBackpropFilter's two ways, chosen per call (`auto`), or forced (tests). */
export type BackpropFilterStrategy = 'auto' | 'conv' | 'columns';
let backpropFilterStrategy: BackpropFilterStrategy = 'auto';

/** Forces one way of computing Conv2DBackpropFilter on wasm, or lets the size decide (`auto`). For tests. */
export function setBackpropFilterStrategy(strategy: BackpropFilterStrategy): void {
  backpropFilterStrategy = strategy;
}

/**
 * `auto` takes the columns way when a filter has at most this many taps (kh kw cin: the convolution way's
 * product then has as few output rows) and the column matrix stays under the column limit. Measured
 * (alone, 2 threads), convolution / columns: 8x8x1 filter on 128x30x30x1 11.6 / 8.4 ms, 8x8x3 on
 * 128x34x34x3 24.5 / 20.5, 6x6x64 on 128x14x14x64 33.6 / 45.3.
 */
const FILTER_COLUMNS_TAPS = 512;

/** A convolution's geometry as the column functions take it (src/engine/wasm-runtime.ts). */
function columnsGeometry(info: backend_util.Conv2DInfo): Col2imGeometry {
  return {
    oh: info.outHeight,
    ow: info.outWidth,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
    height: info.inHeight,
    width: info.inWidth,
    cin: info.inChannels,
  };
}

/** col2im in JavaScript (src/engine/wasm-col2im.ts states it) for images [n0, n0 + count), where the runtime does not run. */
function col2imInJs(from: Float32Array, to: Float32Array, n0: number, count: number, g: Col2imGeometry): void {
  const { oh, ow, kh, kw, sh, sw, top, left, height, width, cin } = g;
  const span = kh * kw * cin;
  let row = 0;
  for (let b = n0; b < n0 + count; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, row += span) {
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - top + ky;
          if (iy < 0 || iy >= height) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - left + kx;
            if (ix < 0 || ix >= width) continue;
            const src = row + (ky * kw + kx) * cin;
            const dst = ((b * height + iy) * width + ix) * cin;
            for (let ch = 0; ch < cin; ch++) to[dst + ch] = to[dst + ch]! + from[src + ch]!;
          }
        }
      }
    }
  }
}

/** The transposed column matrix in JavaScript (src/engine/wasm-im2col.ts states it), where the runtime does not run. */
function columnsTInJs(from: Float32Array, to: Float32Array, images: number, g: Col2imGeometry): void {
  const { oh, ow, kh, kw, sh, sw, top, left, height, width, cin } = g;
  let k = 0;
  for (let ky = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      for (let ci = 0; ci < cin; ci++) {
        for (let b = 0; b < images; b++) {
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * sh - top + ky;
            if (iy < 0 || iy >= height) {
              to.fill(0, k, k + ow);
              k += ow;
              continue;
            }
            const base = (b * height + iy) * width;
            for (let ox = 0; ox < ow; ox++, k++) {
              const ix = ox * sw - left + kx;
              to[k] = ix < 0 || ix >= width ? 0 : from[(base + ix) * cin + ci]!;
            }
          }
        }
      }
    }
  }
}

/**
 * dW by columns: the transposed column matrix colT [kh kw cin, n oh ow] (each row one filter tap's input
 * pixels, zero outside the image; src/engine/wasm-im2col.ts), then one product colT dy = dW. For a first
 * layer (few input channels) the convolution way runs a product with as few output rows as the filter has
 * taps and a huge inner dimension, which the backend runs slowly.
 */
function backpropFilterByColumns(
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const wasm = backend as WasmHeap;
  const c = new Composer(backend);
  const n = x.shape[0]!;
  const geometry = columnsGeometry(info);
  const { oh, ow, kh, kw, cin } = geometry;
  const cout = info.outChannels;
  const span = kh * kw * cin;
  const rows = n * oh * ow;
  const colT = c.keep(wasm.makeOutput([1, span, rows], 'float32'));
  const runtime = runtimeOf(backend);
  if (runtime !== null) {
    const at = (t: TensorInfo) => wasm.typedArrayFromHeap(t).byteOffset;
    im2colTOnHeap(runtime, at(x), at(colT), n, geometry);
  } else columnsTInJs(wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(colT), n, geometry);
  const flatDy = c.run(Reshape, { x: dy }, { shape: [1, rows, cout] });
  const product = c.run(BatchMatMul, { a: colT, b: flatDy }, { transposeA: false, transposeB: false });
  return c.finish(c.run(Reshape, { x: product }, { shape: [kh, kw, cin, cout] }));
}

const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropFilter');
  const x = inputs['x']!;
  const dy = inputs['dy']!;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape!,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const columns = taps * x.shape[0]! * info.outHeight * info.outWidth;
  const byColumns =
    backpropFilterStrategy === 'columns' ||
    (backpropFilterStrategy === 'auto' && taps <= FILTER_COLUMNS_TAPS && columns <= COLUMN_LIMIT);
  return (byColumns ? backpropFilterByColumns : backpropFilterByConv)(x, dy, info, backend);
};

/** Conv2DBackpropInput's two ways, chosen per call by their cost (`auto`), or forced (tests). */
export type BackpropInputStrategy = 'auto' | 'phases' | 'columns';
let backpropInputStrategy: BackpropInputStrategy = 'auto';

/** The column matrix of one chunk of the columns way stays under this many floats (64 MiB). */
const COLUMN_LIMIT = 16 * 1024 * 1024;
let columnLimit = COLUMN_LIMIT;

/**
 * Forces one way of computing Conv2DBackpropInput on wasm, or lets the cost decide (`auto`, the
 * default); `limit` caps the floats of one chunk's column matrix. For tests.
 */
export function setBackpropInputStrategy(strategy: BackpropInputStrategy, limit = COLUMN_LIMIT): void {
  backpropInputStrategy = strategy;
  columnLimit = limit;
}

/** What scattering one column value costs in JavaScript, in multiply-adds of the fast product (measured: ~30). */
const SCATTER_COST = 30;

/** Along one axis, phase r of stride s: taps r + s*m (m < taps), dx rows i = j*s + r - pad for j in [first, last]. */
function phase(r: number, s: number, k: number, pad: number, size: number) {
  return {
    taps: r < k ? Math.ceil((k - r) / s) : 0,
    first: Math.ceil((pad - r) / s),
    last: Math.floor((size - 1 + pad - r) / s),
  };
}

/** Multiply-adds of the phases way: every phase's stride-1 convolution over the common output range. */
function phasesCost(info: backend_util.Conv2DInfo, n: number): number {
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, inHeight, inWidth } = info;
  const rows = Array.from({ length: sh }, (_, r) => phase(r, sh, kh, info.padInfo.top, inHeight));
  const cols = Array.from({ length: sw }, (_, q) => phase(q, sw, kw, info.padInfo.left, inWidth));
  const span = (ps: ReturnType<typeof phase>[]) =>
    Math.max(...ps.map((p) => p.last)) - Math.min(...ps.map((p) => p.first)) + 1;
  const taps = rows.reduce((t, r) => t + r.taps, 0) * cols.reduce((t, q) => t + q.taps, 0);
  return n * span(rows) * span(cols) * taps * info.inChannels * info.outChannels;
}

/** Multiply-adds of the columns way, counting the scatter in the same unit. */
function columnsCost(info: backend_util.Conv2DInfo, n: number): number {
  const columns = n * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels;
  return columns * (info.outChannels + SCATTER_COST);
}

/**
 * dx by columns: the column matrix col = dy W^T ([n oh ow, kh kw cin], one fast product with no
 * wasted multiply) and then each column row added into the dx window it came from ("col2im",
 * src/engine/wasm-col2im.ts). In chunks of whole images so that col stays under the column limit.
 */
function backpropInputByColumns(
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const wasm = backend as WasmHeap;
  const c = new Composer(backend);
  const [n, , , cout] = dy.shape as [number, number, number, number];
  const geometry = columnsGeometry(info);
  const { oh, ow, kh, kw, height, width, cin } = geometry;
  const span = kh * kw * cin;
  const flatFilter = c.run(Reshape, { x: filter }, { shape: [span, cout] });
  const wt = c.run(Reshape, { x: c.run(Transpose, { x: flatFilter }, { perm: [1, 0] }) }, { shape: [1, cout, span] });
  const flatDy = c.run(Reshape, { x: dy }, { shape: [1, n * oh * ow, cout] });
  const dx = wasm.makeOutput([n, height, width, cin], 'float32');
  wasm.typedArrayFromHeap(dx).fill(0);
  const perChunk = Math.max(1, Math.floor(columnLimit / (oh * ow * span)));
  const runtime = runtimeOf(backend);
  for (let n0 = 0; n0 < n; n0 += perChunk) {
    const count = Math.min(perChunk, n - n0);
    const part =
      count === n
        ? flatDy
        : c.run(Slice, { x: flatDy }, { begin: [0, n0 * oh * ow, 0], size: [1, count * oh * ow, cout] });
    const col = c.run(BatchMatMul, { a: part, b: wt }, { transposeA: false, transposeB: false });
    if (runtime !== null) {
      const dxAt = wasm.typedArrayFromHeap(dx).byteOffset + 4 * n0 * height * width * cin;
      col2imOnHeap(runtime, wasm.typedArrayFromHeap(col).byteOffset, dxAt, count, geometry);
    } else {
      // Views after the allocations: a growing heap detaches views taken before it.
      col2imInJs(wasm.typedArrayFromHeap(col), wasm.typedArrayFromHeap(dx), n0, count, geometry);
    }
    wasm.disposeData(col.dataId);
    if (part !== flatDy) wasm.disposeData(part.dataId);
  }
  c.finish(dx);
  return dx;
}

/**
 * One phase's sub-filter, built in JavaScript (the backend's Reverse and StridedSlice take 15 and 10 ms
 * on a 6x6x64x128 filter): taps r, r + s, ... of the filter, flipped, channels swapped:
 * sub[a, b, co, ci] = filter[r + sh (tr - 1 - a), q + sw (tc - 1 - b), ci, co].
 */
function subFilter(
  wasm: WasmHeap,
  filter: TensorInfo,
  [r, q]: [number, number],
  [tr, tc]: [number, number],
  [sh, sw]: [number, number],
): TensorInfo {
  const [, kw, cin, cout] = filter.shape as [number, number, number, number];
  const out = wasm.makeOutput([tr, tc, cout, cin], 'float32');
  const from = wasm.typedArrayFromHeap(filter);
  const to = wasm.typedArrayFromHeap(out);
  let k = 0;
  for (let a = 0; a < tr; a++) {
    for (let b = 0; b < tc; b++) {
      const base = ((r + sh * (tr - 1 - a)) * kw + (q + sw * (tc - 1 - b))) * cin * cout;
      for (let co = 0; co < cout; co++) for (let ci = 0; ci < cin; ci++) to[k++] = from[base + ci * cout + co]!;
    }
  }
  return out;
}

/**
 * dx by phases ("sub-pixel" decomposition): for stride s the rows i with (i + pad) mod s = r receive only
 * the filter taps r, r + s, r + 2s, ... So each of the s x s phases is a stride-1 convolution of dy with
 * that sub-filter (flipped, channels swapped), and the phases interleave into dx. Unlike spreading dy
 * with zeros, no multiply-add is spent on a zero: s^2 times less work for stride s. It does spend some
 * on the border (each phase is a full convolution of dy), which the columns way does not.
 */
function backpropInputByPhases(
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const wasm = backend as WasmHeap;
  const c = new Composer(backend);
  const [n, oh, ow] = dy.shape as [number, number, number, number];
  const { inHeight: height, inWidth: width, inChannels: cin, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const rows = Array.from({ length: sh }, (_, r) => phase(r, sh, kh, top, height));
  const cols = Array.from({ length: sw }, (_, q) => phase(q, sw, kw, left, width));
  // A common j range for every phase, so that they interleave by a reshape.
  const j0 = Math.min(...rows.map((p) => p.first));
  const j1 = Math.max(...rows.map((p) => p.last));
  const k0 = Math.min(...cols.map((p) => p.first));
  const k1 = Math.max(...cols.map((p) => p.last));
  const rowsOut = j1 - j0 + 1;
  const colsOut = k1 - k0 + 1;
  // dy padded (or cropped) so that a 'valid' convolution with m taps yields exactly rows j0..j1.
  const shifted = (taps: number, first: number, count: number, size: number) => {
    const before = taps - 1 - first;
    const after = count - size - before + taps - 1;
    return [before, after] as const;
  };
  const padOrCrop = (x: TensorInfo, [b0, a0]: readonly [number, number], [b1, a1]: readonly [number, number]) => {
    let out = x;
    if (b0 < 0 || a0 < 0 || b1 < 0 || a1 < 0) {
      const [, h, w, ch] = out.shape as [number, number, number, number];
      const begin = [0, Math.max(0, -b0), Math.max(0, -b1), 0];
      const size = [n, h - begin[1]! - Math.max(0, -a0), w - begin[2]! - Math.max(0, -a1), ch];
      out = c.run(Slice, { x: out }, { begin, size });
    }
    if (b0 > 0 || a0 > 0 || b1 > 0 || a1 > 0) {
      const paddings = [
        [0, 0],
        [Math.max(0, b0), Math.max(0, a0)],
        [Math.max(0, b1), Math.max(0, a1)],
        [0, 0],
      ];
      out = c.run(PadV2, { x: out }, { paddings, constantValue: 0 });
    }
    return out;
  };
  const rowPhases: TensorInfo[] = [];
  for (let r = 0; r < sh; r++) {
    const colPhases: TensorInfo[] = [];
    for (let q = 0; q < sw; q++) {
      const pr = rows[r]!;
      const pq = cols[q]!;
      if (pr.taps === 0 || pq.taps === 0) {
        colPhases.push(c.run(Fill, {}, { shape: [n, rowsOut, colsOut, cin], value: 0, dtype: 'float32' }));
        continue;
      }
      const sub = c.keep(subFilter(wasm, filter, [r, q], [pr.taps, pq.taps], [sh, sw]));
      const input = padOrCrop(dy, shifted(pr.taps, j0, rowsOut, oh), shifted(pq.taps, k0, colsOut, ow));
      colPhases.push(
        c.run(Conv2D, { x: input, filter: sub }, { strides: 1, pad: 'valid', dilations: 1, dataFormat: 'NHWC' }),
      );
    }
    rowPhases.push(sw === 1 ? colPhases[0]! : c.run(Pack, colPhases, { axis: 3 }));
  }
  // [n, J, (sh), K, (sw), cin] -> [n, J * sh, K * sw, cin]: row (j - j0) * sh + r is input row j * sh + r - top.
  let dx = sh === 1 ? rowPhases[0]! : c.run(Pack, rowPhases, { axis: 2 });
  dx = c.run(Reshape, { x: dx }, { shape: [n, rowsOut * sh, colsOut * sw, cin] });
  const begin = [0, top - j0 * sh, left - k0 * sw, 0];
  const needsSlice = begin[1] !== 0 || begin[2] !== 0 || rowsOut * sh !== height || colsOut * sw !== width;
  if (needsSlice) dx = c.run(Slice, { x: dx }, { begin, size: [n, height, width, cin] });
  return c.finish(dx);
}

const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropInput');
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  const info = backend_util.computeConv2DInfo(
    a.inputShape!,
    filter.shape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const n = dy.shape[0]!;
  const byColumns =
    backpropInputStrategy === 'columns' ||
    (backpropInputStrategy === 'auto' && columnsCost(info, n) < phasesCost(info, n));
  return (byColumns ? backpropInputByColumns : backpropInputByPhases)(dy, filter, info, backend);
};

interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function maxPoolGradConfig(): KernelConfig {
  const stock = originalConfig(MaxPoolGrad);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const a = attrs as unknown as PoolAttrs;
    // MaxPoolWithArgmax takes no rounding mode: leave those rare calls to the stock kernel.
    if (a.dimRoundingMode !== undefined) return stock.kernelFunc(args);
    const c = new Composer(backend);
    const input = inputs['input']!;
    const dy = inputs['dy']!;
    const size = sizeOf(input);
    const [, where] = c.runAll(
      MaxPoolWithArgmax,
      { x: input },
      { filterSize: a.filterSize, strides: a.strides, pad: a.pad, includeBatchInIndex: true },
    );
    const indices = c.run(Reshape, { x: where! }, { shape: [sizeOf(dy), 1] });
    const updates = c.run(Reshape, { x: dy }, { shape: [sizeOf(dy)] });
    const scattered = c.run(ScatterNd, { indices, updates }, { shape: [size] });
    return c.finish(c.run(Reshape, { x: scattered }, { shape: input.shape }));
  };
  return { kernelName: MaxPoolGrad, backendName: 'wasm', kernelFunc };
}

/**
 * Identity shares the data, as the cpu backend's does: the stock wasm kernel copies it (99 copies, 10 ms
 * of a CNN training step: tf.customGrad and the gradient tape call it on every activation).
 */
const identity: KernelFunc = ({ inputs, backend }) => {
  const x = inputs['x']!;
  (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/**
 * Sum over leading axes (a bias gradient: [n, h, w, c] -> [c]) in one pass: float32 SIMD sums of 64
 * rows at a time (src/engine/wasm-sum.ts, both threads when large), added in double here; columns past
 * the last multiple of four in JavaScript. The stock kernel transposes the reduced axes to the end
 * first (8.8 ms of a CNN step for [128, 12, 12, 64]; 2 ms in JavaScript; 0.5 ms now). Everything else
 * goes to the stock kernel.
 */
function sumConfig(): KernelConfig {
  const stock = originalConfig(Sum);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    const { axis, keepDims } = attrs as unknown as { axis: number | number[]; keepDims: boolean };
    const rank = x.shape.length;
    const axes = [...new Set((Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a)))].sort();
    const leading = axes.length > 0 && axes.length < rank && axes.every((a, k) => a === k);
    if (x.dtype !== 'float32' || !leading) return stock.kernelFunc(args);
    const wasm = backend as unknown as WasmHeap;
    const kept = x.shape.slice(axes.length);
    const shape = keepDims ? [...axes.map(() => 1), ...kept] : kept;
    const out = wasm.makeOutput(shape, 'float32');
    const width = kept.reduce((p, n) => p * n, 1);
    const rows = sizeOf(x) / width;
    const total = new Float64Array(width);
    const runtime = runtimeOf(backend);
    // SIMD columns (partial sums of SUM_CHUNK rows, added here in double), the rest in JavaScript.
    const simd = runtime === null ? 0 : width - (width % 4);
    if (simd > 0) {
      const chunks = Math.ceil(rows / SUM_CHUNK);
      const scratch = wasm.makeOutput([chunks * simd], 'float32');
      wasm.typedArrayFromHeap(scratch).fill(0);
      const at = (t: TensorInfo) => wasm.typedArrayFromHeap(t).byteOffset;
      sumRowsOnHeap(runtime!, at(x), at(scratch), rows, simd, width);
      const partials = wasm.typedArrayFromHeap(scratch);
      for (let k = 0; k < partials.length; k += simd) {
        for (let c = 0; c < simd; c++) total[c] = total[c]! + partials[k + c]!;
      }
      wasm.disposeData(scratch.dataId);
    }
    const from = wasm.typedArrayFromHeap(x);
    for (let base = 0; base < from.length; base += width) {
      for (let c = simd; c < width; c++) total[c] = total[c]! + from[base + c]!;
    }
    wasm.typedArrayFromHeap(out).set(total);
    return out;
  };
  return { ...stock, kernelFunc };
}

/**
 * Merges input axes that stay next to each other, in order, under `perm` (and drops axes of size 1):
 * [128, 14, 14, 64] by [3, 1, 2, 0] is [128, 196, 64] by [2, 1, 0].
 */
export function collapsePermutation(shape: readonly number[], perm: readonly number[]) {
  const axes = perm.filter((a) => shape[a] !== 1);
  const groups: number[][] = [];
  for (const a of axes) {
    const last = groups.at(-1);
    if (last !== undefined && last.at(-1)! + 1 === a) last.push(a);
    else groups.push([a]);
  }
  // Groups in input order give the collapsed input's axes.
  const order = [...groups].sort((g, h) => g[0]! - h[0]!);
  const collapsedShape = order.map((g) => g.reduce((p, a) => p * shape[a]!, 1));
  const collapsedPerm = groups.map((g) => order.indexOf(g));
  return { shape: collapsedShape, perm: collapsedPerm };
}

/**
 * Transpose by snnl's wasm functions (src/engine/wasm-transpose.ts, split with the helper thread) for
 * every permutation that collapses to a batched transpose of floats or of blocks ([a, b, c] -> [b, a, c])
 * or to [a, m, c] -> [c, m, a]; the stock
 * kernel costs ~7 ns an element there (11 ms of a CNN step for the filter gradient's input). Other
 * permutations, dtypes, or a backend without the runtime go to the stock kernel.
 */
function transposeConfig(): KernelConfig {
  const stock = originalConfig(Transpose);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    const perm = (attrs as unknown as { perm: number[] }).perm;
    const runtime = x.dtype === 'float32' || x.dtype === 'int32' ? runtimeOf(backend) : null;
    const { shape, perm: p } = collapsePermutation(x.shape, perm);
    const key = p.join(',');
    if (runtime === null || !['1,0', '0,2,1', '2,1,0', '1,0,2', '0,2,1,3'].includes(key)) return stock.kernelFunc(args);
    const wasm = backend as unknown as WasmHeap;
    const out = wasm.makeOutput(
      perm.map((a) => x.shape[a]!),
      x.dtype as 'float32',
    );
    const src = wasm.typedArrayFromHeap(x).byteOffset;
    const dst = wasm.typedArrayFromHeap(out).byteOffset;
    if (key === '1,0') {
      const [rows, cols] = shape as [number, number];
      transposeOnHeap(runtime, src, dst, rows, cols, cols, rows);
    } else if (key === '0,2,1') {
      const [count, rows, cols] = shape as [number, number, number];
      transposeOnHeap(runtime, src, dst, rows, cols, cols, rows, count, rows * cols, rows * cols);
    } else if (key === '1,0,2') {
      // [a, b, c] -> [b, a, c]: a transpose of blocks of c.
      const [rows, cols, block] = shape as [number, number, number];
      transposeBlocksOnHeap(runtime, src, dst, [rows, cols, block], [cols * block, rows * block]);
    } else if (key === '0,2,1,3') {
      const [count, rows, cols, block] = shape as [number, number, number, number];
      const size = rows * cols * block;
      transposeBlocksOnHeap(runtime, src, dst, [rows, cols, block], [cols * block, rows * block], [count, size, size]);
    } else {
      // [a, m, c] -> [c, m, a]: for each m, the a x c matrix at stride m c goes to stride m a.
      const [rows, count, cols] = shape as [number, number, number];
      transposeOnHeap(runtime, src, dst, rows, cols, count * cols, count * rows, count, cols, rows);
    }
    return out;
  };
  return { ...stock, kernelFunc };
}

/**
 * Slice as copies of contiguous runs (typed-array set, a memory copy each) when the runs are long; the
 * stock kernel copies element by element (4 ms of a CNN step for the padding layer's gradient).
 */
function sliceConfig(): KernelConfig {
  const stock = originalConfig(Slice);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return stock.kernelFunc(args);
    const { begin: b, size: z } = attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin, size] = slice_util.parseSliceParams(x as never, b, z) as [number[], number[]];
    const rank = x.shape.length;
    // The run: the trailing axes taken whole, times the last partial one.
    let axis = rank - 1;
    let run = 1;
    while (axis > 0 && begin[axis] === 0 && size[axis] === x.shape[axis]) run *= x.shape[axis--]!;
    run *= size[axis]!;
    if (run < 64 || rank === 0) return stock.kernelFunc(args);
    const wasm = backend as unknown as WasmHeap;
    const out = wasm.makeOutput(size, x.dtype as 'float32');
    const from = wasm.typedArrayFromHeap(x);
    const to = wasm.typedArrayFromHeap(out);
    const strides = [...util.computeStrides(x.shape), 1];
    let from0 = 0;
    for (let a = 0; a <= axis; a++) from0 += begin[a]! * strides[a]!;
    const toStrides = [...util.computeStrides(size), 1];
    forEachRun(size.slice(0, axis), strides, toStrides, from0, 0, (f, t) => to.set(from.subarray(f, f + run), t));
    return out;
  };
  return { ...stock, kernelFunc };
}

/**
 * Calls `copy(from, to)` for each contiguous run of an [outer..., run] walk: `counts` are the outer axes'
 * sizes, `fromStrides` / `toStrides` their strides on each side, `from0` / `to0` the first run's offsets.
 */
function forEachRun(
  counts: number[],
  fromStrides: number[],
  toStrides: number[],
  from0: number,
  to0: number,
  copy: (from: number, to: number) => void,
): void {
  const index = counts.map(() => 0);
  const runs = counts.reduce((p, n) => p * n, 1);
  for (let k = 0; k < runs; k++) {
    let from = from0;
    let to = to0;
    for (let a = 0; a < counts.length; a++) {
      from += index[a]! * fromStrides[a]!;
      to += index[a]! * toStrides[a]!;
    }
    copy(from, to);
    for (let a = counts.length - 1; a >= 0; a--) {
      if (++index[a]! < counts[a]!) break;
      index[a] = 0;
    }
  }
}

/**
 * PadV2 as a copy of each contiguous run of the input and the constant in the gaps between them: the
 * stock kernel takes 1.8 ms on the REFERENCE CNN's [128, 28, 28, 1] input (per-element work on a
 * one-channel image).
 */
function padV2Config(): KernelConfig {
  const stock = originalConfig(PadV2);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    const rank = x.shape.length;
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || rank === 0) return stock.kernelFunc(args);
    const { paddings, constantValue } = attrs as unknown as { paddings: [number, number][]; constantValue: number };
    const shape = x.shape.map((n, a) => paddings[a]![0] + n + paddings[a]![1]);
    // The run: the trailing unpadded axes whole, times the last padded one's input extent.
    let axis = rank - 1;
    let run = 1;
    while (axis > 0 && paddings[axis]![0] === 0 && paddings[axis]![1] === 0) run *= x.shape[axis--]!;
    run *= x.shape[axis]!;
    const wasm = backend as unknown as WasmHeap;
    const out = wasm.makeOutput(shape, x.dtype as 'float32');
    const from = wasm.typedArrayFromHeap(x);
    const to = wasm.typedArrayFromHeap(out);
    if (run === 0 || from.length === 0) {
      to.fill(constantValue);
      return out;
    }
    const fromStrides = [...util.computeStrides(x.shape), 1];
    const toStrides = [...util.computeStrides(shape), 1];
    let to0 = 0;
    for (let a = 0; a <= axis; a++) to0 += paddings[a]![0] * toStrides[a]!;
    // Runs come in increasing output order: the constant goes only into the gaps between them.
    let filled = 0;
    const fill = (end: number) => {
      if (end - filled >= 64) to.fill(constantValue, filled, end);
      else for (let k = filled; k < end; k++) to[k] = constantValue;
    };
    forEachRun(x.shape.slice(0, axis), fromStrides, toStrides, 0, to0, (f, t) => {
      fill(t);
      if (run >= 64) to.set(from.subarray(f, f + run), t);
      else for (let k = 0; k < run; k++) to[t + k] = from[f + k]!;
      filled = t + run;
    });
    fill(to.length);
    return out;
  };
  return { ...stock, kernelFunc };
}

/** dy * step(x) (src/engine/relu-grad.ts): SIMD over the multiple of four, split when large; the rest here. */
const reluGradKernel: KernelFunc = ({ inputs, backend }) => {
  const wasm = backend as unknown as WasmHeap;
  const dy = inputs['dy']!;
  const x = inputs['x']!;
  const out = wasm.makeOutput(x.shape, 'float32');
  const n = sizeOf(x);
  const runtime = runtimeOf(backend);
  const simd = runtime === null ? 0 : n - (n % 4);
  if (simd > 0) {
    const at = (t: TensorInfo) => wasm.typedArrayFromHeap(t).byteOffset;
    reluGradOnHeap(runtime!, at(dy), at(x), at(out), simd);
  }
  const g = wasm.typedArrayFromHeap(dy);
  const v = wasm.typedArrayFromHeap(x);
  const o = wasm.typedArrayFromHeap(out);
  for (let i = simd; i < n; i++) o[i] = g[i]! * (v[i]! > 0 ? 1 : Number.isNaN(v[i]) ? NaN : 0);
  return out;
};

let installed = false;

/** Registers snnl's wasm kernels (idempotent). Call after the wasm backend is registered. */
export function installWasmKernels(): void {
  if (installed) return;
  const transpose = transposeConfig();
  const configs: KernelConfig[] = [
    transpose,
    sliceConfig(),
    padV2Config(),
    batchMatMulConfig(transpose.kernelFunc),
    { kernelName: Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: conv2DBackpropFilter },
    { kernelName: Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput },
    maxPoolGradConfig(),
    { kernelName: Identity, backendName: 'wasm', kernelFunc: identity },
    sumConfig(),
    { kernelName: RELU_GRAD, backendName: 'wasm', kernelFunc: reluGradKernel },
    ...wasmSnnlKernels(original(BatchMatMul)),
  ];
  for (const config of configs) {
    if (getKernel(config.kernelName, config.backendName)) unregisterKernel(config.kernelName, config.backendName);
    registerKernel(config);
  }
  registerReluGradient();
  installed = true;
}
