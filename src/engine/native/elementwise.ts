/** Elementwise and reduction kernels on float32, by op code (src/kernel-names.ts). */
import { backend_util, util, type KernelConfig } from '@tensorflow/tfjs-core';
import { NATIVE_CODES } from '../../kernel-names.js';
import { kernel, SMALL } from './kernel.js';

export function unaryKernels(): KernelConfig[] {
  return Object.entries(NATIVE_CODES.unary).map(([name, op]) =>
    kernel(name, ({ inputs, backend, attrs }) => {
      const x = inputs['x']!;
      const values = backend.floats(x);
      if (values === undefined || values.length < SMALL) return undefined;
      const alpha = name === 'Step' || name === 'LeakyRelu' ? ((attrs as { alpha?: number }).alpha ?? 0) : 0;
      return backend.output(x.shape, (out) => backend.addon.unary(out, op, values, alpha));
    }),
  );
}

export function binaryKernels(): KernelConfig[] {
  return Object.entries(NATIVE_CODES.binary).map(([name, op]) =>
    kernel(name, ({ inputs, backend }) => {
      const a = inputs['a']!;
      const b = inputs['b']!;
      const av = backend.floats(a);
      const bv = backend.floats(b);
      if (av === undefined || bv === undefined) return undefined;
      const shape = backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      if (util.sizeFromShape(shape) < SMALL) return undefined;
      return backend.output(shape, (out) => backend.addon.binary(out, op, av, a.shape, bv, b.shape, shape));
    }),
  );
}

export function reduceKernels(): KernelConfig[] {
  return Object.entries(NATIVE_CODES.reduce).map(([name, op]) =>
    kernel(name, ({ inputs, backend, attrs }) => {
      const x = inputs['x']!;
      const values = backend.floats(x);
      if (values === undefined || values.length < SMALL) return undefined;
      const { keepDims } = attrs as { keepDims: boolean };
      const axisAttr =
        (attrs as { axis?: number | number[]; reductionIndices?: number | number[] }).axis ??
        (attrs as { reductionIndices?: number | number[] }).reductionIndices;
      const axes = util.parseAxisParam(axisAttr ?? [], x.shape);
      if (axes.length === 0) return undefined;
      const shape = keepDims
        ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
        : x.shape.filter((_, i) => !axes.includes(i));
      return backend.output(shape, (out) => backend.addon.reduce(out, op, values, x.shape, axes));
    }),
  );
}
