/** ReLU's gradient (src/engine/gradients.ts) on wasm as one SIMD pass. */
import { type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { reluGradOnHeap, runtimeOf } from './simd/runtime.js';
import { type WasmHeap, sizeOf } from './heap.js';
/** dy * step(x) (src/engine/relu-grad.ts): SIMD over the multiple of four, split when large; the rest here. */
export const reluGradKernel: KernelFunc = ({ inputs, backend }) => {
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
