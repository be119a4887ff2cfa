/**
 * The shape of a native kernel: try the addon, and run the cpu backend's kernel of the same name on
 * inputs it does not accelerate (other dtypes, layouts, tiny tensors).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import type { NativeBackend } from './backend.js';

/** Below this many elements an elementwise op stays in JavaScript (a call into ATen costs a few µs). */
export const SMALL = 256;

type Args = Parameters<KernelFunc>[0];
type Native = (args: Args & { backend: NativeBackend }) => TensorInfo | TensorInfo[] | undefined;

/**
 * A kernel that tries `native` first and runs the cpu backend's kernel when it returns undefined (inputs
 * it does not accelerate).
 */
export function kernel(kernelName: string, native: Native): KernelConfig {
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

export function pads(info: { padInfo: { top: number; bottom: number; left: number; right: number } }) {
  const { top, bottom, left, right } = info.padInfo;
  return [top, bottom, left, right] as [number, number, number, number];
}
