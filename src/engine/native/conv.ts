/** Conv2D (plain and fused) and both of its gradients by ATen's convolutions, NHWC as channels-last. */
import { backend_util, util, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
import { NATIVE_CODES } from '../../kernel-names.js';
import { kernel, pads } from './kernel.js';

interface ConvAttrs {
  strides: [number, number] | number;
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dilations?: [number, number] | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  activation?: string;
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

type Shape4 = [number, number, number, number];

/** tfjs's convolution geometry, as the addon takes it: output shape, strides, dilations, pads. */
function convInfo(xShape: number[], filterShape: number[], a: ConvAttrs) {
  const info = backend_util.computeConv2DInfo(
    xShape as Shape4,
    filterShape as Shape4,
    a.strides,
    a.dilations ?? 1,
    a.pad,
    a.dimRoundingMode,
  );
  return {
    outShape: info.outShape,
    strides: [info.strideHeight, info.strideWidth],
    dilations: [info.dilationHeight, info.dilationWidth],
    pads: pads(info),
  };
}

export const convKernels = (): KernelConfig[] => {
  const conv = (name: string) =>
    kernel(name, ({ inputs, backend, attrs }) => {
      const { x, filter, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
      const a = attrs as unknown as ConvAttrs;
      const code = (NATIVE_CODES.activation as Record<string, number>)[a.activation ?? 'linear'];
      const xv = backend.floats(x!);
      const wv = backend.floats(filter!);
      const bv = bias === undefined ? null : backend.floats(bias);
      const outChannels = filter!.shape[3]!;
      if (a.dataFormat !== 'NHWC' || code === undefined || preluActivationWeights !== undefined) return undefined;
      if (!xv || !wv || bv === undefined || (bias !== undefined && util.sizeFromShape(bias.shape) !== outChannels))
        return undefined;
      const g = convInfo(x!.shape, filter!.shape, a);
      return backend.output(g.outShape, (out) =>
        backend.addon.conv2d(
          out,
          xv,
          x!.shape,
          wv,
          filter!.shape,
          g.strides,
          g.dilations,
          g.pads,
          bv,
          code === 1,
          g.outShape,
        ),
      );
    });
  return [
    conv('Conv2D'),
    conv('FusedConv2D'),
    kernel('Conv2DBackpropInput', ({ inputs, backend, attrs }) => {
      const { dy, filter } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as ConvAttrs;
      const dv = backend.floats(dy!);
      const wv = backend.floats(filter!);
      if (a.dataFormat !== 'NHWC' || !dv || !wv) return undefined;
      // The gradient kernels carry no dilations: tfjs has no gradient for dilated convolutions.
      const g = convInfo(a.inputShape!, filter!.shape, { ...a, dilations: 1 });
      return backend.output(a.inputShape!, (out) =>
        backend.addon.conv2dBackpropInput(
          out,
          dv,
          dy!.shape,
          wv,
          filter!.shape,
          a.inputShape!,
          g.strides,
          g.dilations,
          g.pads,
        ),
      );
    }),
    kernel('Conv2DBackpropFilter', ({ inputs, backend, attrs }) => {
      const { x, dy } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as ConvAttrs;
      const xv = backend.floats(x!);
      const dv = backend.floats(dy!);
      if (a.dataFormat !== 'NHWC' || !xv || !dv) return undefined;
      const g = convInfo(x!.shape, a.filterShape!, { ...a, dilations: 1 });
      return backend.output(a.filterShape!, (out) =>
        backend.addon.conv2dBackpropFilter(
          out,
          xv,
          x!.shape,
          dv,
          dy!.shape,
          a.filterShape!,
          g.strides,
          g.dilations,
          g.pads,
        ),
      );
    }),
  ];
};
