/**
 * Adam's update as a WebAssembly SIMD function over the wasm backend's own (shared) memory.
 *
 * In JavaScript the update is bound by one double-precision square root and divide per element (about
 * 8 ns an element on the shared heap); as f32x4 it does four at a time, in float32 as tfjs's own Adam
 * does (WebAssembly binary format and its SIMD extension, written out in src/engine/wasm/simd/asm.ts's terms).
 *
 * adam(value, m, v, gradient, newValue, newM, newV: byte addresses, bytes: i32 (a multiple of 16),
 *      beta1, beta2, 1 - beta1, 1 - beta2, learningRate, c1, c2, epsilon: f32)
 *   m' = beta1 m + (1 - beta1) g;  v' = beta2 v + (1 - beta2) g g;
 *   value' = value - learningRate (m' / c1) / (sqrt(v' / c2) + epsilon)
 */
import {
  ADD as I32_ADD,
  F32,
  F32X4_SPLAT,
  get,
  I32,
  set,
  F32X4_SQRT,
  F32X4_ADD,
  F32X4_SUB,
  F32X4_MUL,
  F32X4_DIV,
  V128,
  V128_LOAD,
  V128_STORE,
  type FunctionCode,
} from './asm.js';

const load = (address: number, index: number) => [...get(address), ...get(index), ...I32_ADD, ...V128_LOAD];
const store = V128_STORE;
const SPLAT = F32X4_SPLAT;
const [SQRT, ADD, SUB, MUL, DIV] = [F32X4_SQRT, F32X4_ADD, F32X4_SUB, F32X4_MUL, F32X4_DIV];

// Parameters 0-6: addresses (value, m, v, g, newValue, newM, newV); 7: bytes; 8-15: the scalars.
const [VALUE, M, V, G, NEW_VALUE, NEW_M, NEW_V, BYTES] = [0, 1, 2, 3, 4, 5, 6, 7];
// Locals: 16 the byte index; 17-24 the scalars splatted; 25-27 g, m', v'.
const I = 16;
const [B1, B2, K1, K2, LR, C1, C2, EPS] = [17, 18, 19, 20, 21, 22, 23, 24];
const [GV, MV, VV] = [25, 26, 27];

export const adamFunction: FunctionCode = {
  name: 'adam',
  params: [...Array<number>(8).fill(I32), ...Array<number>(8).fill(F32)],
  locals: [
    [1, I32],
    [11, V128],
  ],
  code: [
    ...[8, 9, 10, 11, 12, 13, 14, 15].flatMap((p, k) => [...get(p), ...SPLAT, ...set(17 + k)]),
    ...[0x02, 0x40], // block
    ...[0x03, 0x40], // loop
    ...[...get(I), ...get(BYTES), 0x4f, 0x0d, 0x01], // if i >= bytes: break
    ...[...load(G, I), ...set(GV)],
    ...[...load(M, I), ...get(B1), ...MUL, ...get(GV), ...get(K1), ...MUL, ...ADD, ...set(MV)],
    ...[...load(V, I), ...get(B2), ...MUL, ...get(GV), ...get(GV), ...MUL, ...get(K2), ...MUL, ...ADD, ...set(VV)],
    ...[...get(NEW_M), ...get(I), ...I32_ADD, ...get(MV), ...store],
    ...[...get(NEW_V), ...get(I), ...I32_ADD, ...get(VV), ...store],
    ...[...get(NEW_VALUE), ...get(I), ...I32_ADD, ...load(VALUE, I)],
    ...[...get(LR), ...get(MV), ...get(C1), ...DIV, ...MUL],
    ...[...get(VV), ...get(C2), ...DIV, ...SQRT, ...get(EPS), ...ADD],
    ...[...DIV, ...SUB, ...store],
    ...[...get(I), 0x41, 0x10, ...I32_ADD, ...set(I)], // i += 16
    ...[0x0c, 0x00], // continue
    0x0b, // end loop
    0x0b, // end block
  ],
};
