/** Transpose, Slice, PadV2 and Tile as ATen copies; batch normalization's inference form. */
import * as tf from '@tensorflow/tfjs-core';
import { slice_util, util, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
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
  kernel('Tile', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    const { reps } = attrs as { reps: number[] };
    const shape = x.shape.map((d, i) => d * reps[i]!);
    if (!xv || util.sizeFromShape(shape) < SMALL) return undefined;
    return backend.output(shape, (out) => backend.addon.tile(out, xv, x.shape, reps));
  }),
  kernel('FusedBatchNorm', ({ inputs, backend, attrs }) => {
    const { x, mean, variance, offset, scale } = inputs as Record<string, TensorInfo | undefined>;
    const xv = backend.floats(x!);
    const channels = x!.shape.at(-1)!;
    // One value per channel (shape [C] or [1, ..., 1, C]); other broadcasts run on the cpu kernel.
    const perChannel = (t: TensorInfo | undefined) =>
      t === undefined
        ? null
        : t.shape.at(-1) === channels && util.sizeFromShape(t.shape) === channels
          ? backend.floats(t)
          : undefined;
    const [m, v, o, s] = [mean, variance, offset, scale].map(perChannel);
    if (!xv || xv.length < SMALL || !m || !v || o === undefined || s === undefined) return undefined;
    const { varianceEpsilon } = attrs as { varianceEpsilon: number };
    return backend.output(x!.shape, (out) => backend.addon.batchNorm(out, xv, x!.shape, m, v, o, s, varianceEpsilon));
  }),
];
