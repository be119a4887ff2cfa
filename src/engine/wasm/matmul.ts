/** BatchMatMul on wasm: transposed operands by an explicit transpose and the fast product (see register.ts). */
import {
  BatchMatMul,
  type KernelConfig,
  type KernelFunc,
  type TensorInfo,
  type NamedAttrMap,
} from '@tensorflow/tfjs-core';
import { type WasmLike, type KernelArgs, originalConfig, swapLastAxes, sizeOf } from './heap.js';
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

export function batchMatMulConfig(transpose: KernelFunc): KernelConfig {
  const stock = originalConfig(BatchMatMul);
  const matMul = stock.kernelFunc;
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const { transposeA, transposeB } = (attrs ?? {}) as NamedAttrMap & {
      transposeA: boolean;
      transposeB: boolean;
    };
    const wasm = backend as unknown as WasmLike;
    /** a b by the stock fast product (no transposed operand). */
    const plainProduct = (a: TensorInfo, b: TensorInfo) =>
      matMul({
        inputs: { a, b },
        backend,
        attrs: { transposeA: false, transposeB: false },
      } as KernelArgs) as TensorInfo;
    if (!transposeA && !transposeB) {
      const b = inputs.b!;
      const first = !packed.has(b.dataId);
      packed.add(b.dataId);
      if (!first || !packingIsSlow(inputs.a!, b)) return matMul(args);
      // a b = (b^T a^T)^T: a^T becomes the packed operand, and b is moved once by a transpose.
      const bt = swapLastAxes(transpose, b, backend);
      const at = swapLastAxes(transpose, inputs.a!, backend);
      const product = plainProduct(bt, at);
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
      const product = plainProduct(inputs.b!, at);
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
