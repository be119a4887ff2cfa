/** The wasm backend as snnl's kernels use it: its original kernels, its heap, and small shape helpers. */
import { getKernel, type KernelConfig, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
export interface WasmLike {
  disposeData(dataId: object): boolean | void;
}

/** The wasm backend's heap access: outputs allocated on its heap, and views of them. */
export interface WasmHeap extends WasmLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

export type KernelArgs = Parameters<KernelFunc>[0];

export function originalConfig(name: string): KernelConfig {
  const config = getKernel(name, 'wasm');
  if (config === undefined) throw new Error(`the wasm backend has no ${name} kernel to build on`);
  return config;
}

export function original(name: string): KernelFunc {
  return originalConfig(name).kernelFunc;
}

/** Swaps the last two axes of `x` with the backend's transpose kernel. */
export function swapLastAxes(transpose: KernelFunc, x: TensorInfo, backend: unknown): TensorInfo {
  const rank = x.shape.length;
  const perm = [...Array(rank).keys()];
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1]!, perm[rank - 2]!];
  return transpose({ inputs: { x }, backend, attrs: { perm } } as KernelArgs) as TensorInfo;
}

export const sizeOf = (t: TensorInfo) => t.shape.reduce((p, n) => p * n, 1);

/**
 * Runs the backend's own kernels one after another, freeing every intermediate result but the one
 * returned: the building block of composed kernels.
 */
export class Composer {
  private readonly temporaries: TensorInfo[] = [];
  constructor(private readonly backend: unknown) {}

  /** Runs a kernel; Pack takes its inputs as a list, every other kernel by name. */
  run(name: string, inputs: Record<string, TensorInfo> | TensorInfo[], attrs: object = {}): TensorInfo {
    const out = original(name)({ inputs, backend: this.backend, attrs } as KernelArgs) as TensorInfo;
    this.temporaries.push(out);
    return out;
  }

  /** Runs a kernel with several outputs. */
  runAll(name: string, inputs: Record<string, TensorInfo>, attrs: object = {}): TensorInfo[] {
    const outs = original(name)({ inputs, backend: this.backend, attrs } as KernelArgs) as TensorInfo[];
    this.temporaries.push(...outs);
    return outs;
  }

  /** Adopts a result made outside `run` as an intermediate. */
  keep(t: TensorInfo): TensorInfo {
    this.temporaries.push(t);
    return t;
  }

  /** Frees the intermediates and returns `result`. */
  finish(result: TensorInfo): TensorInfo {
    const wasm = this.backend as WasmLike;
    for (const t of this.temporaries) if (t !== result) wasm.disposeData(t.dataId);
    return result;
  }
}
