/**
 * dy * step(x) as a WebAssembly SIMD function (src/engine/wasm/simd/asm.ts), tfjs's ReLU gradient element
 * for element: step(x) is 1 where x > 0, NaN where x is NaN, else 0.
 *
 *   reluGrad(dy, x, out, bytes)   (addresses in bytes; bytes a multiple of 16)
 */
import {
  ADD,
  F32X4_GT,
  F32X4_MUL,
  F32X4_NE,
  forLoop,
  get,
  I32,
  i32,
  set,
  f32x4Const,
  V128,
  V128_BITSELECT,
  V128_LOAD,
  V128_STORE,
  type FunctionCode,
} from './asm.js';

const [DY, X, OUT, BYTES] = [0, 1, 2, 3];
const [K, XV, STEP] = [4, 5, 6];

export const reluGradFunction: FunctionCode = {
  name: 'reluGrad',
  params: Array<number>(4).fill(I32),
  locals: [
    [1, I32],
    [2, V128],
  ],
  code: forLoop(K, i32(0), get(BYTES), i32(16), [
    ...[...get(X), ...get(K), ...ADD, ...V128_LOAD, ...set(XV)],
    // step = x > 0 ? 1 : 0, then NaN where x is NaN
    ...[...f32x4Const(1), ...f32x4Const(0), ...get(XV), ...f32x4Const(0), ...F32X4_GT, ...V128_BITSELECT, ...set(STEP)],
    ...[...get(XV), ...get(STEP), ...get(XV), ...get(XV), ...F32X4_NE, ...V128_BITSELECT, ...set(STEP)],
    ...[...get(OUT), ...get(K), ...ADD],
    ...[...get(DY), ...get(K), ...ADD, ...V128_LOAD, ...get(STEP), ...F32X4_MUL, ...V128_STORE],
  ]),
};
