/**
 * Adam's update of one variable as a single kernel: one pass over the value, both moments and the
 * gradient, where tfjs's AdamOptimizer runs about a dozen elementwise ops (each a pass over memory and a
 * dispatch). This file is the cpu kernel and the
 * arithmetic every JavaScript path shares; src/engine/wasm/adam.ts and src/engine/native/adam.ts run it
 * on those backends.
 *
 *   m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,
 *   value' = value - lr (m' / c1) / (sqrt(v' / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
 * which is tfjs's AdamOptimizer.applyGradients, term for term.
 *
 * On wasm the update runs as a SIMD WebAssembly function on the backend's own memory (src/engine/
 * wasm/simd/adam.ts); on the multithreaded build, whose memory is shared, a large variable's update is split
 * between this thread and one helper worker running the same function on the same memory
 * (src/engine/wasm/simd/runtime.ts). In plain JavaScript the reference CNN's 5.1 million weights took about
 * 40 ms a step.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { FUSED_ADAM, FUSED_ADAM_INPUTS, type FusedAdamAttrs } from '../../kernel-names.js';

/**
 * Updates elements [start, end) in JavaScript: `arrays` are the value, m, v, gradient, new value, new m
 * and new v (the cpu kernel, and what the wasm SIMD function leaves: a tail shorter than four, or all of
 * it where the function cannot run).
 */
export function updateRange(arrays: Float32Array[], start: number, end: number, a: FusedAdamAttrs): void {
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

interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

const cpuKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const tensors = FUSED_ADAM_INPUTS.map((k) => inputs[k]!);
  const values = tensors.map((t) => cpu.data.get(t.dataId).values);
  const outs = [0, 1, 2].map(() => new Float32Array(values[0]!.length));
  updateRange([...values, ...outs], 0, values[0]!.length, attrs as unknown as FusedAdamAttrs);
  return outs.map((o, k) => cpu.makeTensorInfo(tensors[k]!.shape, 'float32', o));
};

export const adamKernel = (): KernelConfig => ({ kernelName: FUSED_ADAM, backendName: 'cpu', kernelFunc: cpuKernel });
