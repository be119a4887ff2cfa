/**
 * Kernels registered on top of the wasm backend's own, where its stock kernels are slow or missing
 * (tfjs-backend-wasm 4.22; measured on this machine, ../shared/REFERENCE.md section 5):
 *
 * - BatchMatMul with a transposed operand runs a naive loop (1-3.5 GFLOP/s against about 33-42 for the
 *   plain product). A transpose is a memory pass: transpose explicitly, then call the fast product.
 * - Conv2DBackpropFilter is not registered at all, so no CNN can train. The filter gradient is itself a
 *   convolution: of the input with batch and channels swapped, by dy as the filter, stride 1 and
 *   dilation = the forward stride, run by the backend's fast (XNNPACK) Conv2D.
 * - Conv2DBackpropInput is a naive loop. The input gradient is the convolution of dy, spread out by the
 *   stride (zeros between its entries), with the filter flipped and its channels swapped.
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
  PadV2,
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

  run(name: string, inputs: Record<string, TensorInfo>, attrs: object = {}): TensorInfo {
    const kernel = getKernel(name, 'wasm');
    if (kernel === undefined) throw new Error(`the wasm backend has no ${name} kernel to build on`);
    const out = kernel.kernelFunc({ inputs, backend: this.backend, attrs } as KernelArgs) as TensorInfo;
    this.temporaries.push(out);
    return out;
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

/** dx = conv(dy spread by the stride, the filter flipped with channels swapped), stride 1. */
const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropInput');
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  const inputShape = a.inputShape!;
  const [fh, fw] = filter.shape as [number, number, number, number];
  const info = backend_util.computeConv2DInfo(
    inputShape,
    filter.shape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const c = new Composer(backend);
  const [n, oh, ow, cout] = dy.shape as [number, number, number, number];
  const { strideHeight: sh, strideWidth: sw } = info;
  let spread = dy;
  if (sh > 1 || sw > 1) {
    // Zeros between dy's entries: [n, oh, 1, ow, 1, c] padded to [n, oh, sh, ow, sw, c], then trimmed.
    const six = c.run(Reshape, { x: dy }, { shape: [n, oh, 1, ow, 1, cout] });
    const paddings = [
      [0, 0],
      [0, 0],
      [0, sh - 1],
      [0, 0],
      [0, sw - 1],
      [0, 0],
    ];
    const padded = c.run(PadV2, { x: six }, { paddings, constantValue: 0 });
    const flat = c.run(Reshape, { x: padded }, { shape: [n, oh * sh, ow * sw, cout] });
    spread = c.run(Slice, { x: flat }, { begin: [0, 0, 0, 0], size: [n, (oh - 1) * sh + 1, (ow - 1) * sw + 1, cout] });
  }
  const flipped = c.run(Reverse, { x: filter }, { dims: [0, 1] });
  const swapped = c.run(Transpose, { x: flipped }, { perm: [0, 1, 3, 2] }); // [fh, fw, cout, cin]
  const [, height, width] = inputShape;
  const spreadHeight = spread.shape[1]!;
  const spreadWidth = spread.shape[2]!;
  const top = fh - 1 - info.padInfo.top;
  const left = fw - 1 - info.padInfo.left;
  const bottom = height - spreadHeight - top + fh - 1;
  const right = width - spreadWidth - left + fw - 1;
  // Negative padding (a pad larger than the filter) becomes a crop of the result.
  const pad: backend_util.ExplicitPadding = [
    [0, 0],
    [Math.max(0, top), Math.max(0, bottom)],
    [Math.max(0, left), Math.max(0, right)],
    [0, 0],
  ];
  let dx = c.run(Conv2D, { x: spread, filter: swapped }, { strides: 1, pad, dilations: 1, dataFormat: 'NHWC' });
  if (top < 0 || left < 0 || bottom < 0 || right < 0) {
    dx = c.run(
      Slice,
      { x: dx },
      { begin: [0, Math.max(0, -top), Math.max(0, -left), 0], size: [-1, height, width, -1] },
    );
  }
  return c.finish(dx);
};

let installed = false;

/** Registers snnl's wasm kernels (idempotent). Call after the wasm backend is registered. */
export function installWasmKernels(): void {
  if (installed) return;
  const configs: KernelConfig[] = [
    batchMatMulConfig(),
    { kernelName: Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: conv2DBackpropFilter },
    { kernelName: Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput },
  ];
  for (const config of configs) {
    if (getKernel(config.kernelName, config.backendName)) unregisterKernel(config.kernelName, config.backendName);
    registerKernel(config);
  }
  installed = true;
}
