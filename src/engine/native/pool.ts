/** MaxPool and its gradient by ATen's pooling with indices. */
import { backend_util, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
import { kernel, pads } from './kernel.js';

interface PoolAttrs {
  filterSize: [number, number] | number;
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

function poolInfo(shape: number[], a: PoolAttrs) {
  const info = backend_util.computePool2DInfo(
    shape as [number, number, number, number],
    a.filterSize,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  return {
    info,
    filter: [info.filterHeight, info.filterWidth],
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
  };
}

export const poolKernels = (): KernelConfig[] => [
  kernel('MaxPool', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv) return undefined;
    const { info, filter, strides, dilations } = poolInfo(x.shape, attrs as unknown as PoolAttrs);
    return backend.output(info.outShape, (out) =>
      backend.addon.maxPool(out, xv, x.shape, filter, strides, dilations, pads(info), info.outShape),
    );
  }),
  kernel('MaxPoolGrad', ({ inputs, backend, attrs }) => {
    const { dy, input } = inputs as Record<string, TensorInfo>;
    const dv = backend.floats(dy!);
    const xv = backend.floats(input!);
    if (!dv || !xv) return undefined;
    const { filter, strides, dilations, info } = poolInfo(input!.shape, attrs as unknown as PoolAttrs);
    return backend.output(input!.shape, (out) =>
      backend.addon.maxPoolGrad(out, dv, dy!.shape, xv, input!.shape, filter, strides, dilations, pads(info)),
    );
  }),
];
