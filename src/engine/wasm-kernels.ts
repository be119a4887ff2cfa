/**
 * Kernels registered on top of the wasm backend's own, where its stock kernels are slow.
 *
 * tfjs-backend-wasm 4.22 multiplies a transposed operand with a naive loop (1-3.5 GFLOP/s against about
 * 33-42 for the plain product, measured on this machine; ../shared/REFERENCE.md section 5). A transpose
 * is a memory pass, so transposing explicitly and then calling the fast kernel wins by 10x or more.
 *
 * Kernels are data: each entry wraps the backend's original kernel function, and `installWasmKernels`
 * registers them once.
 */
import {
  BatchMatMul,
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

let installed = false;

/** Registers snnl's wasm kernels (idempotent). Call after the wasm backend is registered. */
export function installWasmKernels(): void {
  if (installed) return;
  for (const config of [batchMatMulConfig()]) {
    unregisterKernel(config.kernelName, config.backendName);
    registerKernel(config);
  }
  installed = true;
}
