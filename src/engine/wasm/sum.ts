/** Sum over leading axes on wasm by SIMD column sums (see sumConfig). */
import { Sum, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { runtimeOf, SUM_CHUNK, sumRowsOnHeap } from './simd/runtime.js';
import { type WasmHeap, originalConfig, sizeOf } from './heap.js';
/**
 * Sum over leading axes (a bias gradient: [n, h, w, c] -> [c]) in one pass: float32 SIMD sums of 64
 * rows at a time (src/engine/wasm/simd/sum.ts, both threads when large), added in double here; columns past
 * the last multiple of four in JavaScript. The stock kernel transposes the reduced axes to the end
 * first (8.8 ms of a CNN step for [128, 12, 12, 64]; 2 ms in JavaScript; 0.5 ms now). Everything else
 * goes to the stock kernel.
 */
export function sumConfig(): KernelConfig {
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
