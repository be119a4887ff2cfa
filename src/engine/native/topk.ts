/**
 * TopK and the k-NN search step. TopK on float32 by the addon's per-row selection (threads over rows): the k largest of each row, largest
 * first, ties in the lower index first, as the cpu backend orders them. The k-NN search runs one per chunk
 * of distances.
 */
import type { KernelConfig, TensorInfo } from '@tensorflow/tfjs-core';
import {
  KNN_EXACT,
  KNN_MERGE,
  KNN_REFINE,
  ORTHONORMALIZE,
  type KnnMergeAttrs,
  type KnnRefineAttrs,
} from '../../kernel-names.js';
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
    const [q, qn, t, tn, pd] = floatInputs(backend, KNN_MERGE, [
      queries!,
      queryNorms!,
      train!,
      trainNorms!,
      bestDistances!,
    ]);
    const pi = backend.data.get(bestIndices!.dataId).values as Int32Array;
    const [m, d] = queries!.shape as [number, number];
    const c = train!.shape[0]!;
    const prevK = bestDistances!.shape[1]!;
    const kOut = Math.min(k, prevK + c);
    const distances = backend.allocate(m * kOut);
    const indices = new Int32Array(m * kOut);
    if (m * kOut > 0)
      backend.addon.knnMerge(distances, indices, q!, m, d, qn!, t!, c, tn!, pd!, pi, prevK, kOut, offset);
    return [
      backend.makeTensorInfo([m, kOut], 'float32', distances),
      backend.makeTensorInfo([m, kOut], 'int32', indices),
    ];
  },
});

function floatInputs(backend: NativeBackend, name: string, inputs: TensorInfo[]): Float32Array[] {
  return inputs.map((x) => {
    const values = backend.floats(x);
    if (!values) throw new Error(`${name}: features, norms and distances must be float32`);
    return values;
  });
}

/** Exact distances of each query's candidates in one chunk (kernel-names.ts: KNN_EXACT). */
export const knnExactKernel = (): KernelConfig => ({
  kernelName: KNN_EXACT,
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b, attrs }) => {
    const backend = b as NativeBackend;
    const { queries, queryNorms, train, trainNorms, indices, distances } = inputs as Record<string, TensorInfo>;
    const [q, qn, t, tn, prev] = floatInputs(backend, KNN_EXACT, [
      queries!,
      queryNorms!,
      train!,
      trainNorms!,
      distances!,
    ]);
    const idx = backend.data.get(indices!.dataId).values as Int32Array;
    const [m, d] = queries!.shape as [number, number];
    const width = indices!.shape[1]!;
    const out = backend.allocate(m * width);
    const { offset } = attrs as unknown as { offset: number };
    if (m * width > 0) backend.addon.knnExact(out, q!, m, d, qn!, t!, train!.shape[0]!, tn!, idx, prev!, width, offset);
    return backend.makeTensorInfo([m, width], 'float32', out);
  },
});

/** One chunk of the pruned k-NN search (kernel-names.ts: KNN_REFINE). */
export const knnRefineKernel = (): KernelConfig => ({
  kernelName: KNN_REFINE,
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b, attrs }) => {
    const backend = b as NativeBackend;
    const named = inputs as Record<string, TensorInfo>;
    const { queries, train, bestDistances, bestIndices, queryBounds, trainBounds } = named;
    const [q, qn, qb, t, tn, tb, limits, pd] = floatInputs(backend, KNN_REFINE, [
      queries!,
      named['queryNorms']!,
      queryBounds!,
      train!,
      named['trainNorms']!,
      trainBounds!,
      named['limits']!,
      bestDistances!,
    ]);
    const pi = backend.data.get(bestIndices!.dataId).values as Int32Array;
    const { k, offset, slack } = attrs as unknown as KnnRefineAttrs;
    const [m, d] = queries!.shape as [number, number];
    const c = train!.shape[0]!;
    const a = queryBounds!.shape[1]!;
    const prevK = bestDistances!.shape[1]!;
    const distances = backend.allocate(m * k);
    const indices = new Int32Array(m * k);
    const counts = new Int32Array(m);
    if (m > 0)
      backend.addon.knnRefine(
        distances,
        indices,
        counts,
        q!,
        m,
        d,
        qn!,
        qb!,
        t!,
        c,
        tn!,
        tb!,
        a,
        limits!,
        slack,
        pd!,
        pi,
        prevK,
        k,
        offset,
      );
    return [
      backend.makeTensorInfo([m, k], 'float32', distances),
      backend.makeTensorInfo([m, k], 'int32', indices),
      backend.makeTensorInfo([m], 'int32', counts),
    ];
  },
});

/** An orthonormal basis of a matrix's columns (kernel-names.ts: ORTHONORMALIZE). */
export const orthonormalizeKernel = (): KernelConfig => ({
  kernelName: ORTHONORMALIZE,
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b }) => {
    const backend = b as NativeBackend;
    const x = (inputs as Record<string, TensorInfo>)['x']!;
    const [y] = floatInputs(backend, ORTHONORMALIZE, [x]);
    const [rows, cols] = x.shape as [number, number];
    if (rows < cols) throw new Error(`${ORTHONORMALIZE}: ${rows} rows is fewer than ${cols} columns`);
    const out = backend.allocate(rows * cols);
    if (rows * cols > 0) backend.addon.orthonormalize(out, y!, rows, cols);
    return backend.makeTensorInfo([rows, cols], 'float32', out);
  },
});
