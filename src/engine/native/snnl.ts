/**
 * The fused SNNL forward and backward (src/loss/fused.ts states the contract), and the loss at many
 * temperatures without its gradient (src/loss/sweep.ts), in the addon's C++.
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import {
  DISTANCE_CODES,
  SNNL_DISTANCE_RANGE,
  SNNL_ROWS,
  SNNL_ROWS_GRAD,
  SNNL_SWEEP,
  type SnnlFusedAttrs,
  type SnnlSweepAttrs,
} from '../../kernel-names.js';
import type { NativeBackend } from './backend.js';

export const snnlKernels = (): KernelConfig[] => [
  {
    kernelName: SNNL_ROWS,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, labels } = inputs as Record<string, TensorInfo>;
      const a = attrs as unknown as SnnlFusedAttrs;
      const xv = backend.floats(x!);
      if (!xv) throw new Error('SnnlFusedRows: features must be float32');
      const ids = backend.data.get(labels!.dataId).values as Int32Array;
      const rows = x!.shape[0]!;
      const loss = backend.allocate(rows);
      const k = backend.allocate(rows * rows);
      backend.addon.snnlForward(loss, k, xv, x!.shape, ids, DISTANCE_CODES[a.distance], a.temperature, a.epsilon);
      return [backend.makeTensorInfo([rows], 'float32', loss), backend.makeTensorInfo([rows, rows], 'float32', k)];
    },
  },
  {
    kernelName: SNNL_ROWS_GRAD,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, k, weights } = inputs as Record<string, TensorInfo>;
      const [xv, kv, wv] = [x!, k!, weights!].map((t) => backend.floats(t));
      if (!xv || !kv || !wv) throw new Error('SnnlFusedRowsGrad: inputs must be float32');
      const a = attrs as unknown as SnnlFusedAttrs;
      return backend.output(x!.shape, (out) =>
        backend.addon.snnlBackward(out, xv, x!.shape, kv, wv, DISTANCE_CODES[a.distance]),
      );
    },
  },
  {
    kernelName: SNNL_SWEEP,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x, labels, weights } = inputs as Record<string, TensorInfo>;
      const [xv, wv] = [x!, weights!].map((t) => backend.floats(t));
      if (!xv || !wv) throw new Error('SnnlSweep: features and weights must be float32');
      const ids = backend.data.get(labels!.dataId).values as Int32Array;
      const a = attrs as unknown as SnnlSweepAttrs;
      const temperatures = Float64Array.from(a.temperatures);
      const sums = new Float64Array(3 * temperatures.length);
      const code = DISTANCE_CODES[a.distance];
      backend.addon.snnlSweep(sums, xv, x!.shape, code, a.blockRows, ids, wv, a.epsilon, temperatures, a.derivatives);
      return backend.output([temperatures.length, 3], (out) => out.set(sums));
    },
  },
  {
    kernelName: SNNL_DISTANCE_RANGE,
    backendName: 'native',
    kernelFunc: ({ inputs, backend: b, attrs }) => {
      const backend = b as NativeBackend;
      const { x } = inputs as Record<string, TensorInfo>;
      const xv = backend.floats(x!);
      if (!xv) throw new Error('SnnlDistanceRange: features must be float32');
      const a = attrs as unknown as Pick<SnnlSweepAttrs, 'distance' | 'blockRows'>;
      const range = new Float64Array(2);
      backend.addon.snnlRange(range, xv, x!.shape, DISTANCE_CODES[a.distance], a.blockRows);
      return backend.output([2], (out) => out.set(range));
    },
  },
];
