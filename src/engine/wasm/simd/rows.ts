/**
 * Row passes of the fused SNNL gradient as WebAssembly SIMD functions (src/engine/wasm/simd/asm.ts), over
 * the first `width` (a multiple of 4) floats of each row of a [rows, stride] matrix:
 *
 *   rowDots(x, y, out, rows, width, stride)    out[i] (f64) = sum_k x[i, k] y[i, k], products in float32,
 *                                              sums in double
 *   rowCombine(x, y, out, rows, width, stride, alpha, beta)
 *                                              out[i, k] = alpha[i] x[i, k] + beta[i] y[i, k] (alpha, beta f32)
 *
 * Addresses in bytes; `stride` in floats. The caller does the last width % 4 columns.
 */
import {
  ADD,
  F32_LOAD,
  F32X4_ADD,
  F32X4_MUL,
  F32X4_SPLAT,
  F64_ADD,
  F64_STORE,
  F64X2_ADD,
  F64X2_PROMOTE_LOW,
  f64x2Lane,
  forLoop,
  get,
  HIGH_TO_LOW,
  I32,
  i32,
  MUL,
  set,
  f32x4Const,
  times,
  V128,
  V128_LOAD,
  V128_STORE,
  type FunctionCode,
} from './asm.js';

// rowDots: params 0 x, 1 y, 2 out, 3 rows, 4 width, 5 stride; locals 6 i, 7 p (x byte address), 8 q, 9 end,
// 10 v (v128 product), 11-12 accumulators (f64x2).
const [X, Y, OUT, ROWS, WIDTH, STRIDE] = [0, 1, 2, 3, 4, 5];
const [I, P, Q, END, V, ACC0, ACC1] = [6, 7, 8, 9, 10, 11, 12];

/** p = x + 4 i stride; q = y + 4 i stride; end = p + 4 width */
const rowStart = (x: number, y: number) => [
  ...[...get(x), ...times(I, STRIDE), ...i32(4), ...MUL, ...ADD, ...set(P)],
  ...[...get(y), ...times(I, STRIDE), ...i32(4), ...MUL, ...ADD, ...set(Q)],
  ...[...get(P), ...get(WIDTH), ...i32(4), ...MUL, ...ADD, ...set(END)],
];

export const rowDotsFunction: FunctionCode = {
  name: 'rowDots',
  params: Array<number>(6).fill(I32),
  locals: [
    [4, I32],
    [3, V128],
  ],
  code: forLoop(I, i32(0), get(ROWS), i32(1), [
    ...rowStart(X, Y),
    ...[...f32x4Const(0), ...set(ACC0)], // zeros (as f64x2 too)
    ...[...f32x4Const(0), ...set(ACC1)],
    ...forLoop(P, get(P), get(END), i32(16), [
      ...[...get(P), ...V128_LOAD, ...get(Q), ...V128_LOAD, ...F32X4_MUL, ...set(V)],
      ...[...get(ACC0), ...get(V), ...F64X2_PROMOTE_LOW, ...F64X2_ADD, ...set(ACC0)],
      ...[...get(ACC1), ...get(V), ...get(V), ...HIGH_TO_LOW, ...F64X2_PROMOTE_LOW, ...F64X2_ADD, ...set(ACC1)],
      ...[...get(Q), ...i32(16), ...ADD, ...set(Q)],
    ]),
    // out[i] = the four partial sums
    ...[...get(OUT), ...get(I), ...i32(8), ...MUL, ...ADD],
    ...[...get(ACC0), ...get(ACC1), ...F64X2_ADD, ...set(ACC0)],
    ...[...get(ACC0), ...f64x2Lane(0), ...get(ACC0), ...f64x2Lane(1), ...F64_ADD, ...F64_STORE],
  ]),
};

// rowCombine: params 0 x, 1 y, 2 out, 3 rows, 4 width, 5 stride, 6 alpha, 7 beta; locals 8 i, 9 p, 10 q,
// 11 o, 12 end, 13-14 alpha_i, beta_i splatted.
const [ALPHA, BETA] = [6, 7];
const [CI, CP, CQ, CO, CEND, VA, VB] = [8, 9, 10, 11, 12, 13, 14];

export const rowCombineFunction: FunctionCode = {
  name: 'rowCombine',
  params: Array<number>(8).fill(I32),
  locals: [
    [5, I32],
    [2, V128],
  ],
  code: forLoop(CI, i32(0), get(ROWS), i32(1), [
    ...[...get(X), ...times(CI, STRIDE), ...i32(4), ...MUL, ...ADD, ...set(CP)],
    ...[...get(Y), ...times(CI, STRIDE), ...i32(4), ...MUL, ...ADD, ...set(CQ)],
    ...[...get(OUT), ...times(CI, STRIDE), ...i32(4), ...MUL, ...ADD, ...set(CO)],
    ...[...get(CP), ...get(WIDTH), ...i32(4), ...MUL, ...ADD, ...set(CEND)],
    ...[...get(ALPHA), ...get(CI), ...i32(4), ...MUL, ...ADD, ...F32_LOAD, ...F32X4_SPLAT, ...set(VA)],
    ...[...get(BETA), ...get(CI), ...i32(4), ...MUL, ...ADD, ...F32_LOAD, ...F32X4_SPLAT, ...set(VB)],
    ...forLoop(CP, get(CP), get(CEND), i32(16), [
      ...[...get(CO), ...get(CP), ...V128_LOAD, ...get(VA), ...F32X4_MUL],
      ...[...get(CQ), ...V128_LOAD, ...get(VB), ...F32X4_MUL, ...F32X4_ADD, ...V128_STORE],
      ...[...get(CQ), ...i32(16), ...ADD, ...set(CQ)],
      ...[...get(CO), ...i32(16), ...ADD, ...set(CO)],
    ]),
  ]),
};
