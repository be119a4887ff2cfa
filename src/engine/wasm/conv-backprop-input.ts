/** Conv2DBackpropInput on wasm: by stride phases or by columns, whichever costs less for the call. */
import {
  backend_util,
  BatchMatMul,
  Conv2D,
  Fill,
  Pack,
  PadV2,
  Reshape,
  Slice,
  Transpose,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { col2imOnHeap, runtimeOf } from './simd/runtime.js';
import { type WasmHeap, Composer } from './heap.js';
import { type ConvAttrs, checkNhwc, columnsGeometry, col2imInJs, COLUMN_LIMIT } from './columns.js';
/** Conv2DBackpropInput's two ways, chosen per call by their cost (`auto`), or forced (tests). */
export type BackpropInputStrategy = 'auto' | 'phases' | 'columns';
let backpropInputStrategy: BackpropInputStrategy = 'auto';

let columnLimit = COLUMN_LIMIT;

/**
 * Forces one way of computing Conv2DBackpropInput on wasm, or lets the cost decide (`auto`, the
 * default); `limit` caps the floats of one chunk's column matrix. For tests.
 */
export function setBackpropInputStrategy(strategy: BackpropInputStrategy, limit = COLUMN_LIMIT): void {
  backpropInputStrategy = strategy;
  columnLimit = limit;
}

/** What scattering one column value costs in JavaScript, in multiply-adds of the fast product (measured: ~30). */
const SCATTER_COST = 30;

/** Along one axis, phase r of stride s: taps r + s*m (m < taps), dx rows i = j*s + r - pad for j in [first, last]. */
function phase(r: number, s: number, k: number, pad: number, size: number) {
  return {
    taps: r < k ? Math.ceil((k - r) / s) : 0,
    first: Math.ceil((pad - r) / s),
    last: Math.floor((size - 1 + pad - r) / s),
  };
}

/** Multiply-adds of the phases way: every phase's stride-1 convolution over the common output range. */
function phasesCost(info: backend_util.Conv2DInfo, n: number): number {
  const { strideHeight: sh, strideWidth: sw, filterHeight: kh, filterWidth: kw, inHeight, inWidth } = info;
  const rows = Array.from({ length: sh }, (_, r) => phase(r, sh, kh, info.padInfo.top, inHeight));
  const cols = Array.from({ length: sw }, (_, q) => phase(q, sw, kw, info.padInfo.left, inWidth));
  const span = (ps: ReturnType<typeof phase>[]) =>
    Math.max(...ps.map((p) => p.last)) - Math.min(...ps.map((p) => p.first)) + 1;
  const taps = rows.reduce((t, r) => t + r.taps, 0) * cols.reduce((t, q) => t + q.taps, 0);
  return n * span(rows) * span(cols) * taps * info.inChannels * info.outChannels;
}

/** Multiply-adds of the columns way, counting the scatter in the same unit. */
function columnsCost(info: backend_util.Conv2DInfo, n: number): number {
  const columns = n * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels;
  return columns * (info.outChannels + SCATTER_COST);
}

/**
 * dx by columns: the column matrix col = dy W^T ([n oh ow, kh kw cin], one fast product with no
 * wasted multiply) and then each column row added into the dx window it came from ("col2im",
 * src/engine/wasm/simd/col2im.ts). In chunks of whole images so that col stays under the column limit.
 */
function backpropInputByColumns(
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const wasm = backend as WasmHeap;
  const c = new Composer(backend);
  const [n, , , cout] = dy.shape as [number, number, number, number];
  const geometry = columnsGeometry(info);
  const { oh, ow, kh, kw, height, width, cin } = geometry;
  const span = kh * kw * cin;
  const flatFilter = c.run(Reshape, { x: filter }, { shape: [span, cout] });
  const wt = c.run(Reshape, { x: c.run(Transpose, { x: flatFilter }, { perm: [1, 0] }) }, { shape: [1, cout, span] });
  const flatDy = c.run(Reshape, { x: dy }, { shape: [1, n * oh * ow, cout] });
  const dx = wasm.makeOutput([n, height, width, cin], 'float32');
  wasm.typedArrayFromHeap(dx).fill(0);
  const perChunk = Math.max(1, Math.floor(columnLimit / (oh * ow * span)));
  const runtime = runtimeOf(backend);
  for (let n0 = 0; n0 < n; n0 += perChunk) {
    const count = Math.min(perChunk, n - n0);
    const part =
      count === n
        ? flatDy
        : c.run(Slice, { x: flatDy }, { begin: [0, n0 * oh * ow, 0], size: [1, count * oh * ow, cout] });
    const col = c.run(BatchMatMul, { a: part, b: wt }, { transposeA: false, transposeB: false });
    if (runtime !== null) {
      const dxAt = wasm.typedArrayFromHeap(dx).byteOffset + 4 * n0 * height * width * cin;
      col2imOnHeap(runtime, wasm.typedArrayFromHeap(col).byteOffset, dxAt, count, geometry);
    } else {
      // Views after the allocations: a growing heap detaches views taken before it.
      col2imInJs(wasm.typedArrayFromHeap(col), wasm.typedArrayFromHeap(dx), n0, count, geometry);
    }
    wasm.disposeData(col.dataId);
    if (part !== flatDy) wasm.disposeData(part.dataId);
  }
  c.finish(dx);
  return dx;
}

/**
 * One phase's sub-filter, built in JavaScript (the backend's Reverse and StridedSlice take 15 and 10 ms
 * on a 6x6x64x128 filter): taps r, r + s, ... of the filter, flipped, channels swapped:
 * sub[a, b, co, ci] = filter[r + sh (tr - 1 - a), q + sw (tc - 1 - b), ci, co].
 */
function subFilter(
  wasm: WasmHeap,
  filter: TensorInfo,
  [r, q]: [number, number],
  [tr, tc]: [number, number],
  [sh, sw]: [number, number],
): TensorInfo {
  const [, kw, cin, cout] = filter.shape as [number, number, number, number];
  const out = wasm.makeOutput([tr, tc, cout, cin], 'float32');
  const from = wasm.typedArrayFromHeap(filter);
  const to = wasm.typedArrayFromHeap(out);
  let k = 0;
  for (let a = 0; a < tr; a++) {
    for (let b = 0; b < tc; b++) {
      const base = ((r + sh * (tr - 1 - a)) * kw + (q + sw * (tc - 1 - b))) * cin * cout;
      for (let co = 0; co < cout; co++) for (let ci = 0; ci < cin; ci++) to[k++] = from[base + ci * cout + co]!;
    }
  }
  return out;
}

/**
 * dx by phases ("sub-pixel" decomposition): for stride s the rows i with (i + pad) mod s = r receive only
 * the filter taps r, r + s, r + 2s, ... So each of the s x s phases is a stride-1 convolution of dy with
 * that sub-filter (flipped, channels swapped), and the phases interleave into dx. Unlike spreading dy
 * with zeros, no multiply-add is spent on a zero: s^2 times less work for stride s. It does spend some
 * on the border (each phase is a full convolution of dy), which the columns way does not.
 */
function backpropInputByPhases(
  dy: TensorInfo,
  filter: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const wasm = backend as WasmHeap;
  const c = new Composer(backend);
  const [n, oh, ow] = dy.shape as [number, number, number, number];
  const { inHeight: height, inWidth: width, inChannels: cin, filterHeight: kh, filterWidth: kw } = info;
  const { strideHeight: sh, strideWidth: sw } = info;
  const { top, left } = info.padInfo;
  const rows = Array.from({ length: sh }, (_, r) => phase(r, sh, kh, top, height));
  const cols = Array.from({ length: sw }, (_, q) => phase(q, sw, kw, left, width));
  // A common j range for every phase, so that they interleave by a reshape.
  const j0 = Math.min(...rows.map((p) => p.first));
  const j1 = Math.max(...rows.map((p) => p.last));
  const k0 = Math.min(...cols.map((p) => p.first));
  const k1 = Math.max(...cols.map((p) => p.last));
  const rowsOut = j1 - j0 + 1;
  const colsOut = k1 - k0 + 1;
  // dy padded (or cropped) so that a 'valid' convolution with m taps yields exactly rows j0..j1.
  const shifted = (taps: number, first: number, count: number, size: number) => {
    const before = taps - 1 - first;
    const after = count - size - before + taps - 1;
    return [before, after] as const;
  };
  const padOrCrop = (x: TensorInfo, [b0, a0]: readonly [number, number], [b1, a1]: readonly [number, number]) => {
    let out = x;
    if (b0 < 0 || a0 < 0 || b1 < 0 || a1 < 0) {
      const [, h, w, ch] = out.shape as [number, number, number, number];
      const begin = [0, Math.max(0, -b0), Math.max(0, -b1), 0];
      const size = [n, h - begin[1]! - Math.max(0, -a0), w - begin[2]! - Math.max(0, -a1), ch];
      out = c.run(Slice, { x: out }, { begin, size });
    }
    if (b0 > 0 || a0 > 0 || b1 > 0 || a1 > 0) {
      const paddings = [
        [0, 0],
        [Math.max(0, b0), Math.max(0, a0)],
        [Math.max(0, b1), Math.max(0, a1)],
        [0, 0],
      ];
      out = c.run(PadV2, { x: out }, { paddings, constantValue: 0 });
    }
    return out;
  };
  const rowPhases: TensorInfo[] = [];
  for (let r = 0; r < sh; r++) {
    const colPhases: TensorInfo[] = [];
    for (let q = 0; q < sw; q++) {
      const pr = rows[r]!;
      const pq = cols[q]!;
      if (pr.taps === 0 || pq.taps === 0) {
        colPhases.push(c.run(Fill, {}, { shape: [n, rowsOut, colsOut, cin], value: 0, dtype: 'float32' }));
        continue;
      }
      const sub = c.keep(subFilter(wasm, filter, [r, q], [pr.taps, pq.taps], [sh, sw]));
      const input = padOrCrop(dy, shifted(pr.taps, j0, rowsOut, oh), shifted(pq.taps, k0, colsOut, ow));
      colPhases.push(
        c.run(Conv2D, { x: input, filter: sub }, { strides: 1, pad: 'valid', dilations: 1, dataFormat: 'NHWC' }),
      );
    }
    rowPhases.push(sw === 1 ? colPhases[0]! : c.run(Pack, colPhases, { axis: 3 }));
  }
  // [n, J, (sh), K, (sw), cin] -> [n, J * sh, K * sw, cin]: row (j - j0) * sh + r is input row j * sh + r - top.
  let dx = sh === 1 ? rowPhases[0]! : c.run(Pack, rowPhases, { axis: 2 });
  dx = c.run(Reshape, { x: dx }, { shape: [n, rowsOut * sh, colsOut * sw, cin] });
  const begin = [0, top - j0 * sh, left - k0 * sw, 0];
  const needsSlice = begin[1] !== 0 || begin[2] !== 0 || rowsOut * sh !== height || colsOut * sw !== width;
  if (needsSlice) dx = c.run(Slice, { x: dx }, { begin, size: [n, height, width, cin] });
  return c.finish(dx);
}

export const conv2DBackpropInput: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropInput');
  const dy = inputs['dy']!;
  const filter = inputs['filter']!;
  const info = backend_util.computeConv2DInfo(
    a.inputShape!,
    filter.shape as [number, number, number, number],
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const n = dy.shape[0]!;
  const byColumns =
    backpropInputStrategy === 'columns' ||
    (backpropInputStrategy === 'auto' && columnsCost(info, n) < phasesCost(info, n));
  return (byColumns ? backpropInputByColumns : backpropInputByPhases)(dy, filter, info, backend);
};
