/** Identity, Transpose, Slice and PadV2 on wasm: shared data and copies of contiguous runs instead of per-element loops. */
import { PadV2, Slice, slice_util, Transpose, util, type KernelConfig, type KernelFunc } from '@tensorflow/tfjs-core';
import { runtimeOf, transposeBlocksOnHeap, transposeOnHeap } from './simd/runtime.js';
import { type WasmHeap, originalConfig } from './heap.js';
/**
 * Identity shares the data, as the cpu backend's does: the stock wasm kernel copies it (99 copies, 10 ms
 * of a CNN training step: tf.customGrad and the gradient tape call it on every activation).
 */
export const identity: KernelFunc = ({ inputs, backend }) => {
  const x = inputs['x']!;
  (backend as unknown as { incRef(dataId: object): void }).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
};

/**
 * Merges input axes that stay next to each other, in order, under `perm` (and drops axes of size 1):
 * [128, 14, 14, 64] by [3, 1, 2, 0] is [128, 196, 64] by [2, 1, 0].
 */
export function collapsePermutation(shape: readonly number[], perm: readonly number[]) {
  const axes = perm.filter((a) => shape[a] !== 1);
  const groups: number[][] = [];
  for (const a of axes) {
    const last = groups.at(-1);
    if (last !== undefined && last.at(-1)! + 1 === a) last.push(a);
    else groups.push([a]);
  }
  // Groups in input order give the collapsed input's axes.
  const order = [...groups].sort((g, h) => g[0]! - h[0]!);
  const collapsedShape = order.map((g) => g.reduce((p, a) => p * shape[a]!, 1));
  const collapsedPerm = groups.map((g) => order.indexOf(g));
  return { shape: collapsedShape, perm: collapsedPerm };
}

/**
 * Transpose by snnl's wasm functions (src/engine/wasm/simd/transpose.ts, split with the helper thread) for
 * every permutation that collapses to a batched transpose of floats or of blocks ([a, b, c] -> [b, a, c])
 * or to [a, m, c] -> [c, m, a]; the stock
 * kernel costs ~7 ns an element there (11 ms of a CNN step for the filter gradient's input). Other
 * permutations, dtypes, or a backend without the runtime go to the stock kernel.
 */
export function transposeConfig(): KernelConfig {
  const stock = originalConfig(Transpose);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    const perm = (attrs as unknown as { perm: number[] }).perm;
    const runtime = x.dtype === 'float32' || x.dtype === 'int32' ? runtimeOf(backend) : null;
    const { shape, perm: p } = collapsePermutation(x.shape, perm);
    const key = p.join(',');
    if (runtime === null || !['1,0', '0,2,1', '2,1,0', '1,0,2', '0,2,1,3'].includes(key)) return stock.kernelFunc(args);
    const wasm = backend as unknown as WasmHeap;
    const out = wasm.makeOutput(
      perm.map((a) => x.shape[a]!),
      x.dtype as 'float32',
    );
    const src = wasm.typedArrayFromHeap(x).byteOffset;
    const dst = wasm.typedArrayFromHeap(out).byteOffset;
    if (key === '1,0') {
      const [rows, cols] = shape as [number, number];
      transposeOnHeap(runtime, src, dst, rows, cols, cols, rows);
    } else if (key === '0,2,1') {
      const [count, rows, cols] = shape as [number, number, number];
      transposeOnHeap(runtime, src, dst, rows, cols, cols, rows, count, rows * cols, rows * cols);
    } else if (key === '1,0,2') {
      // [a, b, c] -> [b, a, c]: a transpose of blocks of c.
      const [rows, cols, block] = shape as [number, number, number];
      transposeBlocksOnHeap(runtime, src, dst, [rows, cols, block], [cols * block, rows * block]);
    } else if (key === '0,2,1,3') {
      const [count, rows, cols, block] = shape as [number, number, number, number];
      const size = rows * cols * block;
      transposeBlocksOnHeap(runtime, src, dst, [rows, cols, block], [cols * block, rows * block], [count, size, size]);
    } else {
      // [a, m, c] -> [c, m, a]: for each m, the a x c matrix at stride m c goes to stride m a.
      const [rows, count, cols] = shape as [number, number, number];
      transposeOnHeap(runtime, src, dst, rows, cols, count * cols, count * rows, count, cols, rows);
    }
    return out;
  };
  return { ...stock, kernelFunc };
}

/**
 * Slice as copies of contiguous runs (typed-array set, a memory copy each) when the runs are long; the
 * stock kernel copies element by element (4 ms of a CNN step for the padding layer's gradient).
 */
export function sliceConfig(): KernelConfig {
  const stock = originalConfig(Slice);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    if (x.dtype !== 'float32' && x.dtype !== 'int32') return stock.kernelFunc(args);
    const { begin: b, size: z } = attrs as unknown as { begin: number | number[]; size: number | number[] };
    const [begin, size] = slice_util.parseSliceParams(x as never, b, z) as [number[], number[]];
    const rank = x.shape.length;
    // The run: the trailing axes taken whole, times the last partial one.
    let axis = rank - 1;
    let run = 1;
    while (axis > 0 && begin[axis] === 0 && size[axis] === x.shape[axis]) run *= x.shape[axis--]!;
    run *= size[axis]!;
    if (run < 64 || rank === 0) return stock.kernelFunc(args);
    const wasm = backend as unknown as WasmHeap;
    const out = wasm.makeOutput(size, x.dtype as 'float32');
    const from = wasm.typedArrayFromHeap(x);
    const to = wasm.typedArrayFromHeap(out);
    const strides = [...util.computeStrides(x.shape), 1];
    let from0 = 0;
    for (let a = 0; a <= axis; a++) from0 += begin[a]! * strides[a]!;
    const toStrides = [...util.computeStrides(size), 1];
    forEachRun(size.slice(0, axis), strides, toStrides, from0, 0, (f, t) => to.set(from.subarray(f, f + run), t));
    return out;
  };
  return { ...stock, kernelFunc };
}

/**
 * Calls `copy(from, to)` for each contiguous run of an [outer..., run] walk: `counts` are the outer axes'
 * sizes, `fromStrides` / `toStrides` their strides on each side, `from0` / `to0` the first run's offsets.
 */
export function forEachRun(
  counts: number[],
  fromStrides: number[],
  toStrides: number[],
  from0: number,
  to0: number,
  copy: (from: number, to: number) => void,
): void {
  const index = counts.map(() => 0);
  const runs = counts.reduce((p, n) => p * n, 1);
  for (let k = 0; k < runs; k++) {
    let from = from0;
    let to = to0;
    for (let a = 0; a < counts.length; a++) {
      from += index[a]! * fromStrides[a]!;
      to += index[a]! * toStrides[a]!;
    }
    copy(from, to);
    for (let a = counts.length - 1; a >= 0; a--) {
      if (++index[a]! < counts[a]!) break;
      index[a] = 0;
    }
  }
}

/**
 * PadV2 as a copy of each contiguous run of the input and the constant in the gaps between them: the
 * stock kernel takes 1.8 ms on the REFERENCE CNN's [128, 28, 28, 1] input (per-element work on a
 * one-channel image).
 */
export function padV2Config(): KernelConfig {
  const stock = originalConfig(PadV2);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const x = inputs['x']!;
    const rank = x.shape.length;
    if ((x.dtype !== 'float32' && x.dtype !== 'int32') || rank === 0) return stock.kernelFunc(args);
    const { paddings, constantValue } = attrs as unknown as { paddings: [number, number][]; constantValue: number };
    const shape = x.shape.map((n, a) => paddings[a]![0] + n + paddings[a]![1]);
    // The run: the trailing unpadded axes whole, times the last padded one's input extent.
    let axis = rank - 1;
    let run = 1;
    while (axis > 0 && paddings[axis]![0] === 0 && paddings[axis]![1] === 0) run *= x.shape[axis--]!;
    run *= x.shape[axis]!;
    const wasm = backend as unknown as WasmHeap;
    const out = wasm.makeOutput(shape, x.dtype as 'float32');
    const from = wasm.typedArrayFromHeap(x);
    const to = wasm.typedArrayFromHeap(out);
    if (run === 0 || from.length === 0) {
      to.fill(constantValue);
      return out;
    }
    const fromStrides = [...util.computeStrides(x.shape), 1];
    const toStrides = [...util.computeStrides(shape), 1];
    let to0 = 0;
    for (let a = 0; a <= axis; a++) to0 += paddings[a]![0] * toStrides[a]!;
    // Runs come in increasing output order: the constant goes only into the gaps between them.
    let filled = 0;
    const fill = (end: number) => {
      if (end - filled >= 64) to.fill(constantValue, filled, end);
      else for (let k = filled; k < end; k++) to[k] = constantValue;
    };
    forEachRun(x.shape.slice(0, axis), fromStrides, toStrides, 0, to0, (f, t) => {
      fill(t);
      if (run >= 64) to.set(from.subarray(f, f + run), t);
      else for (let k = 0; k < run; k++) to[t + k] = from[f + k]!;
      filled = t + run;
    });
    fill(to.length);
    return out;
  };
  return { ...stock, kernelFunc };
}
