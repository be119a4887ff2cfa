/** The fused SNNL forward and backward (src/loss/fused.ts states the contract) in the addon's C++. */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { DISTANCE_CODES, SNNL_ROWS, SNNL_ROWS_GRAD, type SnnlFusedAttrs } from '../../kernel-names.js';
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
];
