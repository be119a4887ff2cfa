/**
 * The `native` backend: TensorFlow.js kernels run in LibTorch's ATen through snnl's addon.
 *
 * It is the cpu backend (its tensors are plain typed arrays, which the addon hands to ATen without copies)
 * with the heavy kernels replaced: matrix products, convolutions and their gradients, max pooling, the
 * elementwise and reduction ops of a training step on float32, transpose, slice, pad, the fused SNNL
 * forward and backward, and the fused Adam update. Every other kernel, and every replaced one on inputs it
 * does not accelerate (other dtypes, NCHW, tiny tensors where a call into the addon costs more than the
 * arithmetic), runs the cpu backend's own kernel on the same data, so everything still works.
 */
import * as tf from '@tensorflow/tfjs-core';
import {
  backend_util,
  slice_util,
  util,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import { DISTANCES, type DistanceName } from '../loss/distance.js';
import { SNNL_ROWS, SNNL_ROWS_GRAD, type SnnlFusedAttrs } from '../loss/fused.js';
import { FUSED_ADAM, type FusedAdamAttrs } from './fused-adam.js';
import type { NativeAddon } from './native-addon.js';

/** Below this many elements an elementwise op stays in JavaScript (a call into ATen costs a few µs). */
const SMALL = 256;

/**
 * Output buffers, reused. A training step allocates the same large outputs every step; left to V8, each
 * allocation counts as external memory pressure and the collector runs several times a step (measured:
 * about 11 collections and 20 ms of a 118 ms CNN step). The backend knows when a tensor's data is
 * disposed, so it returns the buffer here instead, keyed by its exact size.
 *
 * A buffer is reused only when no live tensor refers to it: every entry written into the backend's data
 * storage is counted against its buffer (cpu kernels may make a new tensor over an input's buffer, e.g.
 * a slice view), and values read out to callers (dataSync, data) are copies.
 */
class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly users = new Map<ArrayBuffer, number>();
  private freeBytes = 0;

  constructor(private readonly maxFreeBytes: number) {}

  floats(n: number): Float32Array {
    const bytes = n * 4;
    const reused = this.free.get(bytes)?.pop();
    if (reused !== undefined) this.freeBytes -= bytes;
    const buffer = reused ?? (Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer);
    this.users.set(buffer, 0);
    return new Float32Array(buffer, 0, n);
  }

  owns(values: unknown): values is Float32Array {
    return values instanceof Float32Array && this.users.has(values.buffer as ArrayBuffer);
  }

  retain(values: unknown): void {
    if (!this.owns(values)) return;
    const buffer = values.buffer as ArrayBuffer;
    this.users.set(buffer, this.users.get(buffer)! + 1);
  }

  release(values: unknown): void {
    if (!this.owns(values)) return;
    const buffer = values.buffer as ArrayBuffer;
    const count = this.users.get(buffer)! - 1;
    if (count > 0) {
      this.users.set(buffer, count);
      return;
    }
    this.users.delete(buffer);
    if (this.freeBytes + buffer.byteLength > this.maxFreeBytes) return; // left to the collector
    const list = this.free.get(buffer.byteLength);
    if (list) list.push(buffer);
    else this.free.set(buffer.byteLength, [buffer]);
    this.freeBytes += buffer.byteLength;
  }

  clear(): void {
    this.free.clear();
    this.users.clear();
    this.freeBytes = 0;
  }
}

type Values = Parameters<MathBackendCPU['write']>[0];

export class NativeBackend extends MathBackendCPU {
  private readonly pool = new BufferPool(1 << 30);

  constructor(readonly addon: NativeAddon) {
    super();
    // The cpu backend greets Node users with advice to install tfjs-node; this is not that backend.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** The float32 values of a tensor, or undefined when it holds another dtype. */
  floats(t: TensorInfo): Float32Array | undefined {
    if (t.dtype !== 'float32') return undefined;
    const values = this.data.get(t.dataId).values;
    return values instanceof Float32Array ? values : undefined;
  }

  /** An uninitialized float32 array of n elements (every addon function writes all of its output). */
  allocate(n: number): Float32Array {
    return this.pool.floats(n);
  }

  /** A float32 output of `shape`, written by `fill` (an addon call). */
  output(shape: number[], fill: (out: Float32Array) => void): TensorInfo {
    const out = this.allocate(util.sizeFromShape(shape));
    fill(out);
    return this.makeTensorInfo(shape, 'float32', out);
  }

  override write(values: Values, shape: number[], dtype: tf.DataType): tf.DataId {
    this.pool.retain(values);
    return super.write(values, shape, dtype);
  }

  override move(dataId: tf.DataId, values: Values, shape: number[], dtype: tf.DataType, refCount: number): void {
    this.pool.retain(values);
    super.move(dataId, values, shape, dtype, refCount);
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const disposed = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.pool.release(values);
    return disposed;
  }

  /** Values handed to callers are copies when their buffer will be reused. */
  override readSync(dataId: tf.DataId): Values {
    const values = super.readSync(dataId);
    return this.pool.owns(values) ? values.slice() : values;
  }

  override dispose(): void {
    super.dispose();
    this.pool.clear();
  }
}

type Args = Parameters<KernelFunc>[0];
type Native = (args: Args & { backend: NativeBackend }) => TensorInfo | TensorInfo[] | undefined;

/**
 * A kernel that tries `native` first and runs the cpu backend's kernel when it returns undefined (inputs
 * it does not accelerate).
 */
function kernel(kernelName: string, native: Native): KernelConfig {
  const cpu = tf.getKernel(kernelName, 'cpu')?.kernelFunc;
  return {
    kernelName,
    backendName: 'native',
    kernelFunc: (args) => {
      const result = native(args as Args & { backend: NativeBackend });
      if (result !== undefined) return result;
      if (cpu === undefined) throw new Error(`the native backend cannot run ${kernelName} on these inputs`);
      return cpu(args);
    },
  };
}

const UNARY: Record<string, number> = {
  Relu: 0,
  Neg: 1,
  Step: 2,
  Square: 3,
  Exp: 4,
  Log: 5,
  Sqrt: 6,
  Sigmoid: 7,
  Tanh: 8,
  Abs: 9,
  Rsqrt: 10,
  Reciprocal: 11,
};

const BINARY: Record<string, number> = {
  Add: 0,
  Sub: 1,
  Multiply: 2,
  RealDiv: 3,
  Maximum: 4,
  Minimum: 5,
  SquaredDifference: 6,
};

const REDUCE: Record<string, number> = { Sum: 0, Max: 1, Min: 2, Mean: 3 };

const ACTIVATIONS: Record<string, number> = { linear: 0, relu: 1 };

function pads(info: { padInfo: { top: number; bottom: number; left: number; right: number } }) {
  const { top, bottom, left, right } = info.padInfo;
  return [top, bottom, left, right] as [number, number, number, number];
}

function unaryKernels(): KernelConfig[] {
  return Object.entries(UNARY).map(([name, op]) =>
    kernel(name, ({ inputs, backend, attrs }) => {
      const x = inputs['x']!;
      const values = backend.floats(x);
      if (values === undefined || values.length < SMALL) return undefined;
      const alpha = name === 'Step' ? ((attrs as { alpha?: number }).alpha ?? 0) : 0;
      return backend.output(x.shape, (out) => backend.addon.unary(out, op, values, alpha));
    }),
  );
}

function binaryKernels(): KernelConfig[] {
  return Object.entries(BINARY).map(([name, op]) =>
    kernel(name, ({ inputs, backend }) => {
      const a = inputs['a']!;
      const b = inputs['b']!;
      const av = backend.floats(a);
      const bv = backend.floats(b);
      if (av === undefined || bv === undefined) return undefined;
      const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      if (util.sizeFromShape(shape) < SMALL) return undefined;
      return backend.output(shape, (out) => backend.addon.binary(out, op, av, a.shape, bv, b.shape, shape));
    }),
  );
}

function reduceKernels(): KernelConfig[] {
  return Object.entries(REDUCE).map(([name, op]) =>
    kernel(name, ({ inputs, backend, attrs }) => {
      const x = inputs['x']!;
      const values = backend.floats(x);
      if (values === undefined || values.length < SMALL) return undefined;
      const { keepDims } = attrs as { keepDims: boolean };
      const axisAttr =
        (attrs as { axis?: number | number[]; reductionIndices?: number | number[] }).axis ??
        (attrs as { reductionIndices?: number | number[] }).reductionIndices;
      const axes = util.parseAxisParam(axisAttr ?? [], x.shape);
      if (axes.length === 0) return undefined;
      const shape = keepDims
        ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
        : x.shape.filter((_, i) => !axes.includes(i));
      return backend.output(shape, (out) => backend.addon.reduce(out, op, values, x.shape, axes));
    }),
  );
}

function matMulOutputShape(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): number[] {
  const outer = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const m = transposeA ? a.shape.at(-1)! : a.shape.at(-2)!;
  const n = transposeB ? b.shape.at(-2)! : b.shape.at(-1)!;
  return [...outer, m, n];
}

const matMulKernels = (): KernelConfig[] => [
  kernel('BatchMatMul', ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    const av = backend.floats(a);
    const bv = backend.floats(b);
    if (av === undefined || bv === undefined) return undefined;
    const shape = matMulOutputShape(a, b, transposeA, transposeB);
    return backend.output(shape, (out) =>
      backend.addon.matMul(out, av, a.shape, bv, b.shape, transposeA, transposeB, null, [], 0, shape),
    );
  }),
  kernel('_FusedMatMul', ({ inputs, backend, attrs }) => {
    const { a, b, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
    const { transposeA, transposeB, activation } = attrs as {
      transposeA: boolean;
      transposeB: boolean;
      activation: string;
    };
    const code = ACTIVATIONS[activation];
    const av = backend.floats(a!);
    const bv = backend.floats(b!);
    const biasValues = bias === undefined ? null : backend.floats(bias);
    if (code === undefined || preluActivationWeights !== undefined || !av || !bv || biasValues === undefined)
      return undefined;
    const shape = matMulOutputShape(a!, b!, transposeA, transposeB);
    return backend.output(shape, (out) =>
      backend.addon.matMul(
        out,
        av,
        a!.shape,
        bv,
        b!.shape,
        transposeA,
        transposeB,
        biasValues,
        bias?.shape ?? [],
        code,
        shape,
      ),
    );
  }),
];

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

type Shape4 = [number, number, number, number];

/** tfjs's convolution geometry, as the addon takes it: output shape, strides, dilations, pads. */
function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs) {
  const info = backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
  );
  return {
    outShape: info.outShape,
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pads: pads(info),
  };
}

const convKernels = (): KernelConfig[] => {
  const conv = (name: string) =>
    kernel(name, ({ inputs, backend, attrs }) => {
      const { x, filter, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
      const a = attrs as unknown as ConvAttrs;
      const code = ACTIVATIONS[a.activation ?? 'linear'];
      const xv = backend.floats(x!);
      const wv = backend.floats(filter!);
      const bv = bias === undefined ? null : backend.floats(bias);
      const outChannels = filter!.shape[3]!;
      if (a.dataFormat !== 'NHWC' || code === undefined || preluActivationWeights !== undefined) return undefined;
      if (!xv || !wv || bv === undefined || (bias !== undefined && util.sizeFromShape(bias.shape) !== outChannels))
        return undefined;
      const g = convInfo(x!.shape, filter!.shape, a);
      return backend.output(g.outShape, (out) =>
        backend.addon.conv2d(
          out,
          xv,
          x!.shape,
          wv,
          filter!.shape,
          g.strides,
          g.dilations,
          g.pads,
          bv,
          code === 1,
          g.outShape,
        ),
      );
    });
  return [
    conv('Conv2D'),
    conv('FusedConv2D'),
    kernel('Conv2DBackpropInput', ({ inputs, backend, attrs }) => {
      const { dy, filter } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as ConvAttrs;
      const dv = backend.floats(dy!);
      const wv = backend.floats(filter!);
      if (a.dataFormat !== 'NHWC' || !dv || !wv) return undefined;
      // The gradient kernels carry no dilations: tfjs has no gradient for dilated convolutions.
      const g = convInfo(a.inputShape!, filter!.shape, { ...a, dilations: 1 });
      return backend.output(a.inputShape!, (out) =>
        backend.addon.conv2dBackpropInput(
          out,
          dv,
          dy!.shape,
          wv,
          filter!.shape,
          a.inputShape!,
          g.strides,
          g.dilations,
          g.pads,
        ),
      );
    }),
    kernel('Conv2DBackpropFilter', ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as ConvAttrs;
      const xv = backend.floats(x!);
      const dv = backend.floats(dy!);
      if (a.dataFormat !== 'NHWC' || !xv || !dv) return undefined;
      const g = convInfo(x!.shape, a.filterShape!, { ...a, dilations: 1 });
      return backend.output(a.filterShape!, (out) =>
        backend.addon.conv2dBackpropFilter(
          out,
          xv,
          x!.shape,
          dv,
          dy!.shape,
          a.filterShape!,
          g.strides,
          g.dilations,
          g.pads,
        ),
      );
    }),
  ];
};

interface PoolAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function poolInfo(shape: number[], a: PoolAttrs) {
  const info = backend_util.computePool2DInfo(
    shape as [number, number, number, number],
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  return {
    info,
    filter: [info.filterHeight, info.filterWidth],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
  };
}

const poolKernels = (): KernelConfig[] => [
  kernel('MaxPool', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv) return undefined;
    const { info, filter, strides, dilations } = poolInfo(x.shape, attrs as unknown as PoolAttrs);
    return backend.output(info.outShape, (out) =>
      backend.addon.maxPool(out, xv, x.shape, filter, strides, dilations, pads(info), info.outShape),
    );
  }),
  kernel('MaxPoolGrad', ({ inputs, backend, attrs }) => {
    const { dy, input } = inputs as Record<string, TensorInfo>;
    const dv = backend.floats(dy!);
    const xv = backend.floats(input!);
    if (!dv || !xv) return undefined;
    const { filter, strides, dilations, info } = poolInfo(input!.shape, attrs as unknown as PoolAttrs);
    return backend.output(input!.shape, (out) =>
      backend.addon.maxPoolGrad(out, dv, dy!.shape, xv, input!.shape, filter, strides, dilations, pads(info)),
    );
  }),
];

const layoutKernels = (): KernelConfig[] => [
  kernel('Transpose', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv || xv.length < SMALL) return undefined;
    const { perm } = attrs as { perm: number[] };
    return backend.output(
      perm.map((p) => x.shape[p]!),
      (out) => backend.addon.transpose(out, xv, x.shape, perm),
    );
  }),
  kernel('Slice', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv) return undefined;
    const { begin, size } = attrs as { begin: number | number[]; size: number | number[] };
    const [b, s] = slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size) as [number[], number[]];
    // A slice of leading rows is a view: the cpu kernel returns it without copying.
    if (util.sizeFromShape(s) < SMALL || slice_util.isSliceContinous(x.shape, b, s)) return undefined;
    return backend.output(s, (out) => backend.addon.slice(out, xv, x.shape, b, s));
  }),
  kernel('PadV2', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv || xv.length < SMALL) return undefined;
    const { paddings, constantValue } = attrs as { paddings: Array<[number, number]>; constantValue: number };
    const shape = x.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
    return backend.output(shape, (out) => backend.addon.pad(out, xv, x.shape, paddings.flat(), constantValue));
  }),
];

const distanceCode = (name: DistanceName) => DISTANCES.indexOf(name);

const fusedKernels = (): KernelConfig[] => [
  {
    kernelName: SNNL_ROWS,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, labels } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as SnnlFusedAttrs;
      const xv = backend.floats(x!);
      if (!xv) throw new Error('SnnlFusedRows: features must be float32');
      const ids = backend.data.get(labels!.dataId).values as Int32Array;
      const rows = x!.shape[0]!;
      const loss = backend.allocate(rows);
      const k = backend.allocate(rows * rows);
      backend.addon.snnlForward(loss, k, xv, x!.shape, ids, distanceCode(a.distance), a.temperature, a.epsilon);
      return [backend.makeTensorInfo([rows], 'float32', loss), backend.makeTensorInfo([rows, rows], 'float32', k)];
    },
  },
  {
    kernelName: SNNL_ROWS_GRAD,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, k, weights } = inputs as Record<string, TensorInfo>;
      const [xv, kv, wv] = [x!, k!, weights!].map((t) => backend.floats(t));
      if (!xv || !kv || !wv) throw new Error('SnnlFusedRowsGrad: inputs must be float32');
      const a = attrs as unknown as SnnlFusedAttrs;
      return backend.output(x!.shape, (out) =>
        backend.addon.snnlBackward(out, xv, x!.shape, kv, wv, distanceCode(a.distance)),
      );
    },
  },
  {
    kernelName: FUSED_ADAM,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const order = ['value', 'm', 'v', 'gradient'].map((key) => inputs[key]!);
      const [value, m, v, g] = order.map((t) => backend.floats(t)!);
      const a = attrs as unknown as FusedAdamAttrs;
      const outs = [0, 1, 2].map(() => backend.allocate(g!.length));
      const { beta1, beta2, learningRate, epsilon, correction1, correction2 } = a;
      backend.addon.adam(
        outs[0]!,
        outs[1]!,
        outs[2]!,
        value!,
        m!,
        v!,
        g!,
        beta1,
        beta2,
        learningRate,
        epsilon,
        correction1,
        correction2,
      );
      return outs.map((o) => backend.makeTensorInfo(order[0]!.shape, 'float32', o));
    },
  },
];

let registered = false;

/**
 * Registers the `native` backend and its kernels (once): the accelerated ones, then the cpu backend's
 * kernel for every other name.
 */
export function registerNativeBackend(addon: NativeAddon, threads: number, priority = 3): void {
  if (registered) return;
  registered = true;
  addon.setThreads(threads);
  tf.registerBackend('native', () => new NativeBackend(addon), priority);
  const accelerated = [
    ...unaryKernels(),
    ...binaryKernels(),
    ...reduceKernels(),
    ...matMulKernels(),
    ...convKernels(),
    ...poolKernels(),
    ...layoutKernels(),
    ...fusedKernels(),
  ];
  for (const config of accelerated) tf.registerKernel(config);
  const names = new Set(accelerated.map((c) => c.kernelName));
  for (const config of tf.getKernelsForBackend('cpu')) {
    if (!names.has(config.kernelName)) tf.registerKernel({ ...config, backendName: 'native' });
  }
}

/** The names of the kernels that run in ATen (for reports and tests). */
export function acceleratedKernels(): string[] {
  return tf
    .getKernelsForBackend('native')
    .filter((k) => tf.getKernel(k.kernelName, 'cpu')?.kernelFunc !== k.kernelFunc)
    .map((k) => k.kernelName);
}
