/**
 * Kernels registered on top of the wasm backend's own, where its stock kernels are slow or missing
 * (tfjs-backend-wasm 4.22, measured on a 2-core machine; docs/engine.md says where and how to add one):
 *
 * - BatchMatMul with a transposed operand runs a naive loop (1-3.5 GFLOP/s against about 33-42 for the
 *   plain product). A transpose is a memory pass: transpose explicitly, then call the fast product;
 *   for a b^T with a large b (a layer's input gradient dy W^T), compute (b a^T)^T instead.
 * - Conv2DBackpropFilter is not registered at all, so no CNN can train. The filter gradient is itself a
 *   convolution: of the input with batch and channels swapped, by dy as the filter, stride 1 and
 *   dilation = the forward stride, run by the backend's fast (XNNPACK) Conv2D.
 * - Conv2DBackpropInput is a naive loop. Two ways replace it, chosen per call by their cost: a set of
 *   stride-1 convolutions of dy, one per stride phase, with the matching taps of the flipped filter; or
 *   one product dy W^T into columns added back into their windows.
 * - MaxPoolGrad is a naive loop. The backend's MaxPoolWithArgmax finds where each window's maximum
 *   came from, and ScatterNd adds dy there (overlapping windows add up, as the gradient does).
 * - Transpose, Slice, PadV2, Sum and Identity: copies of runs and SIMD passes instead of per-element work;
 *   snnl's own kernels (src/kernel-names.ts): the fused SNNL forward and backward, Adam, ReLU's gradient.
 *
 * Kernels are data: one file per kernel or small family exports its configs (each wrapping the backend's
 * original kernel where it builds on one), and this list registers them in one loop.
 */
import {
  BatchMatMul,
  Conv2DBackpropFilter,
  Conv2DBackpropInput,
  getKernel,
  registerKernel,
  unregisterKernel,
  type KernelConfig,
} from '@tensorflow/tfjs-core';
import { RELU_GRAD } from '../../kernel-names.js';
import { adamKernel } from './adam.js';
import { conv2DBackpropFilter } from './conv-backprop-filter.js';
import { conv2DBackpropInput } from './conv-backprop-input.js';
import { original } from './heap.js';
import { identity, padV2Config, sliceConfig, transposeConfig } from './layout.js';
import { batchMatMulConfig } from './matmul.js';
import { maxPoolGradConfig } from './max-pool-grad.js';
import { reluGradKernel } from './relu-grad.js';
import { wasmSnnlKernels } from './snnl.js';
import { sumConfig } from './sum.js';

let registered = false;

/** Registers snnl's wasm kernels (once). Call after the wasm backend is registered. */
export function registerWasmKernels(): void {
  if (registered) return;
  const transpose = transposeConfig();
  const configs: KernelConfig[] = [
    transpose,
    sliceConfig(),
    padV2Config(),
    batchMatMulConfig(transpose.kernelFunc),
    { kernelName: Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: conv2DBackpropFilter },
    { kernelName: Conv2DBackpropInput, backendName: 'wasm', kernelFunc: conv2DBackpropInput },
    maxPoolGradConfig(),
    { kernelName: 'Identity', backendName: 'wasm', kernelFunc: identity },
    sumConfig(),
    { kernelName: RELU_GRAD, backendName: 'wasm', kernelFunc: reluGradKernel },
    adamKernel(),
    ...wasmSnnlKernels(original(BatchMatMul)),
  ];
  for (const config of configs) {
    if (getKernel(config.kernelName, config.backendName)) unregisterKernel(config.kernelName, config.backendName);
    registerKernel(config);
  }
  registered = true;
}
