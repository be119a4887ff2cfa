/** Transpose, Slice and PadV2 as ATen copies. */
import * as tf from '@tensorflow/tfjs-core';
import { slice_util, util, type KernelConfig } from '@tensorflow/tfjs-core';
import { kernel, SMALL } from './kernel.js';

export const layoutKernels = (): KernelConfig[] => [
  kernel('Transpose', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv || xv.length < SMALL) return undefined;
    const { perm } = attrs as { perm: number[] };
    return backend.output(
      perm.map((p) => x.shape[p]!),
      (out) => backend.addon.transpose(out, xv, x.shape, perm),
    );
  }),
  kernel('Slice', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv) return undefined;
    const { begin, size } = attrs as { begin: number | number[]; size: number | number[] };
    const [b, s] = slice_util.parseSliceParams(x as unknown as tf.Tensor, begin, size) as [number[], number[]];
    // A slice of leading rows is a view: the cpu kernel returns it without copying.
    if (util.sizeFromShape(s) < SMALL || slice_util.isSliceContinous(x.shape, b, s)) return undefined;
    return backend.output(s, (out) => backend.addon.slice(out, xv, x.shape, b, s));
  }),
  kernel('PadV2', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    if (!xv || xv.length < SMALL) return undefined;
    const { paddings, constantValue } = attrs as { paddings: Array<[number, number]>; constantValue: number };
    const shape = x.shape.map((d, i) => d + paddings[i]![0] + paddings[i]![1]);
    return backend.output(shape, (out) => backend.addon.pad(out, xv, x.shape, paddings.flat(), constantValue));
  }),
];
