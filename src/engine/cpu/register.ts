/** snnl's kernels for the cpu backend (the reference the other backends are tested against). */
import { getKernel, registerKernel, type KernelConfig } from '@tensorflow/tfjs-core';
import { adamKernel } from './adam.js';

let registered = false;

/** Registers them (once). */
export function registerCpuKernels(): void {
  if (registered) return;
  const configs: KernelConfig[] = [adamKernel()];
  for (const config of configs) if (!getKernel(config.kernelName, 'cpu')) registerKernel(config);
  registered = true;
}
