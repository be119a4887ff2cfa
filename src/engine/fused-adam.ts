/**
 * Adam's update of one variable as a single kernel: one pass over the value, both moments and the
 * gradient, where tfjs's AdamOptimizer runs about a dozen elementwise ops (each a pass over memory and a
 * dispatch). Registered for wasm (reading and writing the wasm heap directly) and cpu.
 *
 *   m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,
 *   value' = value - lr (m' / c1) / (sqrt(v' / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
 * which is tfjs's AdamOptimizer.applyGradients, term for term.
 */
import { registerKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

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

function update([value, m, v, g]: Float32Array[], [outValue, outM, outV]: Float32Array[], a: FusedAdamAttrs): void {
  const { beta1, beta2, learningRate, epsilon, correction1, correction2 } = a;
  const keep1 = 1 - beta1;
  const keep2 = 1 - beta2;
  for (let i = 0; i < g!.length; i++) {
    const gi = g![i]!;
    const mi = Math.fround(m![i]! * beta1 + gi * keep1);
    const vi = Math.fround(v![i]! * beta2 + gi * gi * keep2);
    outM![i] = mi;
    outV![i] = vi;
    outValue![i] = value![i]! - (learningRate * (mi / correction1)) / (Math.sqrt(vi / correction2) + epsilon);
  }
}

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
  const tensors = ORDER.map((k) => inputs[k]!);
  // Allocate first: a later allocation may grow the heap and detach views taken before it.
  const outs = tensors.slice(0, 3).map((t) => wasm.makeOutput(t.shape, 'float32'));
  update(
    tensors.map((t) => wasm.typedArrayFromHeap(t)),
    outs.map((t) => wasm.typedArrayFromHeap(t)),
    attrs as unknown as FusedAdamAttrs,
  );
  return outs;
};

const cpuKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const tensors = ORDER.map((k) => inputs[k]!);
  const values = tensors.map((t) => cpu.data.get(t.dataId).values);
  const outs = [0, 1, 2].map(() => new Float32Array(values[0]!.length));
  update(values, outs, attrs as unknown as FusedAdamAttrs);
  return outs.map((o, k) => cpu.makeTensorInfo(tensors[k]!.shape, 'float32', o));
};

let registered = false;

export function registerFusedAdam(): void {
  if (registered) return;
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'wasm', kernelFunc: wasmKernel });
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'cpu', kernelFunc: cpuKernel });
  registered = true;
}
