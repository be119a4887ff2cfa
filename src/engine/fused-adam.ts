/**
 * Adam's update of one variable as a single kernel: one pass over the value, both moments and the
 * gradient, where tfjs's AdamOptimizer runs about a dozen elementwise ops (each a pass over memory and a
 * dispatch). Registered for wasm (reading and writing the wasm heap directly) and cpu.
 *
 *   m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,
 *   value' = value - lr (m' / c1) / (sqrt(v' / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
 * which is tfjs's AdamOptimizer.applyGradients, term for term.
 *
 * On wasm the update runs as a SIMD WebAssembly function on the backend's own memory (src/engine/
 * wasm-adam.ts); on the multithreaded build, whose memory is shared, a large variable's update is split
 * between this thread and one helper worker running the same function on the same memory
 * (src/engine/wasm-runtime.ts). In plain JavaScript the REFERENCE CNN's 5.1 million weights took about
 * 40 ms a step.
 */
import { registerKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { helperPart, runtimeOf, splits } from './wasm-runtime.js';

export const FUSED_ADAM = 'SnnlFusedAdam';

export interface FusedAdamAttrs {
  beta1: number;
  beta2: number;
  learningRate: number;
  epsilon: number;
  /** 1 - beta1^t and 1 - beta2^t for this step t (counted from 1). */
  correction1: number;
  correction2: number;
}

/**
 * Updates elements [start, end) in JavaScript: `arrays` are the value, m, v, gradient, new value, new m
 * and new v (the cpu kernel, and what the wasm SIMD function leaves: a tail shorter than four, or all of
 * it where the function cannot run).
 */
function updateRange(arrays: Float32Array[], start: number, end: number, a: FusedAdamAttrs): void {
  const [value, m, v, g, outValue, outM, outV] = arrays as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const { beta1, beta2, learningRate, epsilon, correction1, correction2 } = a;
  const keep1 = 1 - beta1;
  const keep2 = 1 - beta2;
  for (let i = start; i < end; i++) {
    const gi = g[i]!;
    const mi = Math.fround(m[i]! * beta1 + gi * keep1);
    const vi = Math.fround(v[i]! * beta2 + gi * gi * keep2);
    outM[i] = mi;
    outV[i] = vi;
    outValue[i] = value[i]! - (learningRate * (mi / correction1)) / (Math.sqrt(vi / correction2) + epsilon);
  }
}

/** The SIMD function's scalar arguments, in its order (src/engine/wasm-adam.ts). */
const simdScalars = (a: FusedAdamAttrs) => [
  a.beta1,
  a.beta2,
  1 - a.beta1,
  1 - a.beta2,
  a.learningRate,
  a.correction1,
  a.correction2,
  a.epsilon,
];

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

const ORDER = ['value', 'm', 'v', 'gradient'];

const wasmKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as FusedAdamAttrs;
  const tensors = ORDER.map((k) => inputs[k]!);
  // Allocate first: a later allocation may grow the heap and detach views taken before it.
  const outs = tensors.slice(0, 3).map((t) => wasm.makeOutput(t.shape, 'float32'));
  const views = [...tensors, ...outs].map((t) => wasm.typedArrayFromHeap(t));
  const n = views[3]!.length;
  const simd = runtimeOf(backend);
  let done = 0;
  if (simd) {
    const adam = simd.functions['adam']!;
    // Blocks of four by SIMD (half on the helper for a large variable), the rest below.
    const blocks = n >> 2;
    const addresses = views.map((view) => view.byteOffset);
    const scalars = simdScalars(a);
    const first = splits(simd, n) ? helperPart(blocks) : 0;
    const mine = () => adam(...addresses.map((address) => address + first * 16), (blocks - first) * 16, ...scalars);
    if (first > 0) simd.helper!.split('adam', [...addresses, first * 16, ...scalars], mine);
    else mine();
    done = blocks * 4;
  }
  if (done < n) updateRange(views, done, n, a);
  return outs;
};

const cpuKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const tensors = ORDER.map((k) => inputs[k]!);
  const values = tensors.map((t) => cpu.data.get(t.dataId).values);
  const outs = [0, 1, 2].map(() => new Float32Array(values[0]!.length));
  updateRange([...values, ...outs], 0, values[0]!.length, attrs as unknown as FusedAdamAttrs);
  return outs.map((o, k) => cpu.makeTensorInfo(tensors[k]!.shape, 'float32', o));
};

let registered = false;

export function registerFusedAdam(): void {
  if (registered) return;
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'wasm', kernelFunc: wasmKernel });
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'cpu', kernelFunc: cpuKernel });
  registered = true;
}
