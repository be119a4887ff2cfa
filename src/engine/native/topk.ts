/**
 * TopK and the k-NN search step. TopK on float32 by the addon's per-row selection (threads over rows): the k largest of each row, largest
 * first, ties in the lower index first, as the cpu backend orders them. The k-NN search runs one per chunk
 * of distances.
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import { KNN_MERGE, type KnnMergeAttrs } from '../../kernel-names.js';
import type { NativeBackend } from './backend.js';
import { kernel } from './kernel.js';

export const topKKernel = (): KernelConfig =>
  kernel('TopK', ({ inputs, backend, attrs }) => {
    const x = inputs['x']!;
    const xv = backend.floats(x);
    const { k, sorted } = attrs as { k: number; sorted: boolean };
    // Unsorted output is left to the cpu kernel, whose order callers of sorted: false may rely on.
    if (!xv || !sorted || x.shape.length === 0) return undefined;
    const cols = x.shape.at(-1)!;
    const rows = cols === 0 ? 0 : xv.length / cols;
    const shape = [...x.shape.slice(0, -1), k];
    const values = backend.allocate(rows * k);
    const indices = new Int32Array(rows * k);
    if (rows * k > 0) backend.addon.topK(values, indices, xv, rows, cols, k);
    return [
      backend.makeTensorInfo(shape, 'float32', values),
      backend.makeTensorInfo(shape, 'int32', indices),
    ] as TensorInfo[];
  });

/** The k-NN search step (kernel-names.ts: KNN_MERGE): one GEMM, then each row merged in C++. */
export const knnMergeKernel = (): KernelConfig => ({
  kernelName: KNN_MERGE,
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b, attrs }) => {
    const backend = b as NativeBackend;
    const { queries, queryNorms, train, trainNorms, bestDistances, bestIndices } = inputs as Record<string, TensorInfo>;
    const { k, offset } = attrs as unknown as KnnMergeAttrs;
    const [q, qn, t, tn, pd] = [queries!, queryNorms!, train!, trainNorms!, bestDistances!].map((x) =>
      backend.floats(x),
    );
    if (!q || !qn || !t || !tn || !pd) throw new Error(`${KNN_MERGE}: features and distances must be float32`);
    const pi = backend.data.get(bestIndices!.dataId).values as Int32Array;
    const [m, d] = queries!.shape as [number, number];
    const c = train!.shape[0]!;
    const prevK = bestDistances!.shape[1]!;
    const kOut = Math.min(k, prevK + c);
    const distances = backend.allocate(m * kOut);
    const indices = new Int32Array(m * kOut);
    if (m * kOut > 0) backend.addon.knnMerge(distances, indices, q, m, d, qn, t, c, tn, pd, pi, prevK, kOut, offset);
    return [
      backend.makeTensorInfo([m, kOut], 'float32', distances),
      backend.makeTensorInfo([m, kOut], 'int32', indices),
    ];
  },
});
