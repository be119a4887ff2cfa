/** Conv2DBackpropFilter on wasm, which the stock backend lacks: as a convolution, or by columns for few taps. */
import {
  backend_util,
  BatchMatMul,
  Conv2D,
  Reshape,
  Slice,
  Transpose,
  type KernelFunc,
  type TensorInfo,
} from '@tensorflow/tfjs-core';
import { im2colTOnHeap, runtimeOf } from './simd/runtime.js';
import { type WasmHeap, Composer } from './heap.js';
import { type ConvAttrs, checkNhwc, columnsGeometry, columnsTInJs, COLUMN_LIMIT } from './columns.js';
/** dW = conv(x^T, dy^T) with stride 1 and dilation = stride, padded so the output is the filter's size. */
function backpropFilterByConv(
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const { filterHeight: fh, filterWidth: fw } = info;
  const c = new Composer(backend);
  const [, height, width] = x.shape as [number, number, number, number];
  const { strideHeight: sh, strideWidth: sw, outHeight: oh, outWidth: ow } = info;
  const { top, left } = info.padInfo;
  // Padding after the input so that the output has exactly fh x fw positions; negative = rows never read.
  let bottom = fh + (oh - 1) * sh - height - top;
  let right = fw + (ow - 1) * sw - width - left;
  let xt = c.run(Transpose, { x }, { perm: [3, 1, 2, 0] }); // [cin, H, W, n]
  if (bottom < 0 || right < 0) {
    const size = [-1, height + Math.min(0, bottom), width + Math.min(0, right), -1];
    xt = c.run(Slice, { x: xt }, { begin: [0, 0, 0, 0], size });
    bottom = Math.max(0, bottom);
    right = Math.max(0, right);
  }
  const dyt = c.run(Transpose, { x: dy }, { perm: [1, 2, 0, 3] }); // [oh, ow, n, cout] as a filter
  const pad: backend_util.ExplicitPadding = [
    [0, 0],
    [top, bottom],
    [left, right],
    [0, 0],
  ];
  const conv = c.run(Conv2D, { x: xt, filter: dyt }, { strides: 1, pad, dilations: [sh, sw], dataFormat: 'NHWC' });
  return c.finish(c.run(Transpose, { x: conv }, { perm: [1, 2, 0, 3] })); // [fh, fw, cin, cout]
}

/** Conv2DBackpropFilter's two ways, chosen per call (`auto`), or forced (tests). */
export type BackpropFilterStrategy = 'auto' | 'conv' | 'columns';
let backpropFilterStrategy: BackpropFilterStrategy = 'auto';

/** Forces one way of computing Conv2DBackpropFilter on wasm, or lets the size decide (`auto`). For tests. */
export function setBackpropFilterStrategy(strategy: BackpropFilterStrategy): void {
  backpropFilterStrategy = strategy;
}

/**
 * `auto` takes the columns way when a filter has at most this many taps (kh kw cin: the convolution way's
 * product then has as few output rows) and the column matrix stays under the column limit. Measured
 * (alone, 2 threads), convolution / columns: 8x8x1 filter on 128x30x30x1 11.6 / 8.4 ms, 8x8x3 on
 * 128x34x34x3 24.5 / 20.5, 6x6x64 on 128x14x14x64 33.6 / 45.3.
 */
const FILTER_COLUMNS_TAPS = 512;

/**
 * dW by columns: the transposed column matrix colT [kh kw cin, n oh ow] (each row one filter tap's input
 * pixels, zero outside the image; src/engine/wasm/simd/im2col.ts), then one product colT dy = dW. For a first
 * layer (few input channels) the convolution way runs a product with as few output rows as the filter has
 * taps and a huge inner dimension, which the backend runs slowly.
 */
function backpropFilterByColumns(
  x: TensorInfo,
  dy: TensorInfo,
  info: backend_util.Conv2DInfo,
  backend: unknown,
): TensorInfo {
  const wasm = backend as WasmHeap;
  const c = new Composer(backend);
  const n = x.shape[0]!;
  const geometry = columnsGeometry(info);
  const { oh, ow, kh, kw, cin } = geometry;
  const cout = info.outChannels;
  const span = kh * kw * cin;
  const rows = n * oh * ow;
  const colT = c.keep(wasm.makeOutput([1, span, rows], 'float32'));
  const runtime = runtimeOf(backend);
  if (runtime !== null) {
    const at = (t: TensorInfo) => wasm.typedArrayFromHeap(t).byteOffset;
    im2colTOnHeap(runtime, at(x), at(colT), n, geometry);
  } else columnsTInJs(wasm.typedArrayFromHeap(x), wasm.typedArrayFromHeap(colT), n, geometry);
  const flatDy = c.run(Reshape, { x: dy }, { shape: [1, rows, cout] });
  const product = c.run(BatchMatMul, { a: colT, b: flatDy }, { transposeA: false, transposeB: false });
  return c.finish(c.run(Reshape, { x: product }, { shape: [kh, kw, cin, cout] }));
}

export const conv2DBackpropFilter: KernelFunc = ({ inputs, backend, attrs }) => {
  const a = attrs as unknown as ConvAttrs;
  checkNhwc(a, 'Conv2DBackpropFilter');
  const x = inputs['x']!;
  const dy = inputs['dy']!;
  const info = backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number],
    a.filterShape!,
    a.strides,
    1,
    a.pad,
    a.dimRoundingMode,
  );
  const taps = info.filterHeight * info.filterWidth * info.inChannels;
  const columns = taps * x.shape[0]! * info.outHeight * info.outWidth;
  const byColumns =
    backpropFilterStrategy === 'columns' ||
    (backpropFilterStrategy === 'auto' && taps <= FILTER_COLUMNS_TAPS && columns <= COLUMN_LIMIT);
  return (byColumns ? backpropFilterByColumns : backpropFilterByConv)(x, dy, info, backend);
};
