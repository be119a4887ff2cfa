/**
 * Registers the `native` backend and its kernels: one list of the accelerated kernels, registered in one
 * loop, then the cpu backend's kernel for every other name.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { NativeAddon } from './addon.js';
import { NativeBackend } from './backend.js';
import { adamKernel } from './adam.js';
import { convKernels } from './conv.js';
import { binaryKernels, reduceKernels, unaryKernels } from './elementwise.js';
import { layoutKernels } from './layout.js';
import { matMulKernels } from './matmul.js';
import { poolKernels } from './pool.js';
import { snnlKernels } from './snnl.js';
import { knnExactKernel, knnMergeKernel, knnRefineKernel, orthonormalizeKernel, topKKernel } from './topk.js';

let registered = false;

/**
 * Registers the `native` backend and its kernels (once): the accelerated ones, then the cpu backend's
 * kernel for every other name.
 */
export function registerNativeBackend(addon: NativeAddon, threads: number, priority = 3): void {
  if (registered) return;
  registered = true;
  addon.setThreads(threads);
  tf.registerBackend('native', () => new NativeBackend(addon), priority);
  const accelerated = [
    ...unaryKernels(),
    ...binaryKernels(),
    ...reduceKernels(),
    ...matMulKernels(),
    ...convKernels(),
    ...poolKernels(),
    ...layoutKernels(),
    ...snnlKernels(),
    adamKernel(),
    topKKernel(),
    knnMergeKernel(),
    knnExactKernel(),
    knnRefineKernel(),
    orthonormalizeKernel(),
  ];
  for (const config of accelerated) tf.registerKernel(config);
  const names = new Set(accelerated.map((c) => c.kernelName));
  for (const config of tf.getKernelsForBackend('cpu')) {
    if (!names.has(config.kernelName)) tf.registerKernel({ ...config, backendName: 'native' });
  }
}

/** The names of the kernels that run in ATen (for reports and tests). */
export function acceleratedKernels(): string[] {
  return tf
    .getKernelsForBackend('native')
    .filter((k) => tf.getKernel(k.kernelName, 'cpu')?.kernelFunc !== k.kernelFunc)
    .map((k) => k.kernelName);
}
