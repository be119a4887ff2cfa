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
 * - Conv2DBackpropInput is a naive loop. The input gradient is a set of stride-1 convolutions of dy, one
 *   per stride phase, with the matching taps of the flipped filter (see below).
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
  MaxPoolGrad,
  MaxPoolWithArgmax,
  Pack,
  ScatterNd,
  PadV2,
  StridedSlice,
  Reshape,
  Reverse,
  Slice,
  getKernel,
  registerKernel,
  unregisterKernel,
  Transpose,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  type NamedAttrMap,
} from '@tensorflow/tfjs-core';

interface WasmLike {
  disposeData(dataId: object): boolean | void;
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

function batchMatMulConfig(): KernelConfig {
  const stock = originalConfig(BatchMatMul);
  const matMul = stock.kernelFunc;
  const transpose = original(Transpose);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const { transposeA, transposeB } = (attrs ?? {}) as NamedAttrMap & {
      transposeA: boolean;
      transposeB: boolean;
    };
    if (!transposeA && !transposeB) return matMul(args);
    const wasm = backend as unknown as WasmLike;
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
const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropFilter');
  const x = inputs['x']!;
  const dy = inputs['dy']!;
  const [fh, fw] = a.filterShape!;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape!,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
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
};

/**
 * dx by phases ("sub-pixel" decomposition): for stride s the rows i with (i + pad) mod s = r receive only
 * the filter taps r, r + s, r + 2s, ... So each of the s x s phases is a stride-1 convolution of dy with
 * that sub-filter (flipped, channels swapped), and the phases interleave into dx. Unlike spreading dy
 * with zeros, no multiply-add is spent on a zero: s^2 times less work for stride s.
 */
const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropInput');
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  const inputShape = a.inputShape!;
  const [kh, kw, cin, cout] = filter.shape as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const c = new Composer(backend);
  const [n, oh, ow] = dy.shape as [number, number, number, number];
  const [, height, width] = inputShape;
  const { strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  // Along one axis, phase r: taps r + s*m (m < taps), output rows j = (i + pad - r) / s for i in [0, size).
  const phase = (r: number, s: number, k: number, pad: number, size: number) => ({
    taps: r < k ? Math.ceil((k - r) / s) : 0,
    first: Math.ceil((pad - r) / s),
    last: Math.floor((size - 1 + pad - r) / s),
  });
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
  const flipped = c.run(Reverse, { x: filter }, { dims: [0, 1] });
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
      // Taps r, r + s, ... of the flipped filter are the reversed sub-filter: flipped index k - 1 - t.
      const lastRow = kh - 1 - (r + sh * (pr.taps - 1));
      const lastCol = kw - 1 - (q + sw * (pq.taps - 1));
      const sub = c.run(
        StridedSlice,
        { x: flipped },
        {
          begin: [lastRow, lastCol, 0, 0],
          end: [kh - r, kw - q, cin, cout],
          strides: [sh, sw, 1, 1],
          beginMask: 0,
          endMask: 0,
          ellipsisMask: 0,
          newAxisMask: 0,
          shrinkAxisMask: 0,
        },
      );
      const swapped = c.run(Transpose, { x: sub }, { perm: [0, 1, 3, 2] }); // [taps, taps, cout, cin]
      const input = padOrCrop(dy, shifted(pr.taps, j0, rowsOut, oh), shifted(pq.taps, k0, colsOut, ow));
      colPhases.push(
        c.run(Conv2D, { x: input, filter: swapped }, { strides: 1, pad: 'valid', dilations: 1, dataFormat: 'NHWC' }),
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

let installed = false;

/** Registers snnl's wasm kernels (idempotent). Call after the wasm backend is registered. */
export function installWasmKernels(): void {
  if (installed) return;
  const configs: KernelConfig[] = [
    batchMatMulConfig(),
    { kernelName: Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: conv2DBackpropFilter },
    { kernelName: Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput },
    maxPoolGradConfig(),
  ];
  for (const config of configs) {
    if (getKernel(config.kernelName, config.backendName)) unregisterKernel(config.kernelName, config.backendName);
    registerKernel(config);
  }
  installed = true;
}
