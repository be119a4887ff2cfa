/** Adam's update of one variable (src/engine/cpu/adam.ts states it) as SIMD WebAssembly on the wasm heap. */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { FUSED_ADAM, FUSED_ADAM_INPUTS, type FusedAdamAttrs } from '../../kernel-names.js';
import { updateRange } from '../cpu/adam.js';
import { helperPart, runtimeOf, splits } from './simd/runtime.js';

/** The SIMD function's scalar arguments, in its order (src/engine/wasm/simd/adam.ts). */
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

const wasmKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as FusedAdamAttrs;
  const tensors = FUSED_ADAM_INPUTS.map((k) => inputs[k]!);
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

export const adamKernel = (): KernelConfig => ({ kernelName: FUSED_ADAM, backendName: 'wasm', kernelFunc: wasmKernel });
