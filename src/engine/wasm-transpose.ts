/**
 * A batched, strided transpose of float32 data as a WebAssembly function (src/engine/wasm-asm.ts):
 *
 *   transpose(src, dst, rows, cols, srcRow, dstCol, count, srcCount, dstCount)   (addresses and strides in bytes)
 *   dst[q dstCount + c dstCol + 4 r] = src[q srcCount + r srcRow + 4 c]   for q < count, r < rows, c < cols
 *
 * In tiles of 32 x 32 so that the strided side stays in the first-level cache. The backend's own
 * Transpose walks every element through a generic index computation (~7 ns an element on this
 * machine); this is a load and a store.
 */
import {
  ADD,
  F32_LOAD,
  F32_STORE,
  forLoop,
  get,
  I32,
  i32,
  minU,
  MUL,
  set,
  SUB,
  type FunctionCode,
} from './wasm-asm.js';

const TILE = 32;

const [SRC, DST, ROWS, COLS, SRC_ROW, DST_COL, COUNT, SRC_COUNT, DST_COUNT] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const [Q, R0, R1, C0, C1, C, S, D, D_END, SQ, DQ] = [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];

const times = (a: number, b: number) => [...get(a), ...get(b), ...MUL];

export const transposeFunction: FunctionCode = {
  name: 'transpose',
  params: Array<number>(9).fill(I32),
  locals: [[11, I32]],
  code: forLoop(Q, i32(0), get(COUNT), i32(1), [
    ...[...get(SRC), ...times(Q, SRC_COUNT), ...ADD, ...set(SQ)],
    ...[...get(DST), ...times(Q, DST_COUNT), ...ADD, ...set(DQ)],
    ...forLoop(R0, i32(0), get(ROWS), i32(TILE), [
      ...minU([...get(R0), ...i32(TILE), ...ADD], get(ROWS)),
      ...set(R1),
      ...forLoop(C0, i32(0), get(COLS), i32(TILE), [
        ...minU([...get(C0), ...i32(TILE), ...ADD], get(COLS)),
        ...set(C1),
        ...forLoop(C, get(C0), get(C1), i32(1), [
          // s = sq + r0 srcRow + 4 c;  d = dq + c dstCol + 4 r0;  dEnd = d + 4 (r1 - r0)
          ...[...get(SQ), ...times(R0, SRC_ROW), ...ADD, ...get(C), ...i32(4), ...MUL, ...ADD, ...set(S)],
          ...[...get(DQ), ...times(C, DST_COL), ...ADD, ...get(R0), ...i32(4), ...MUL, ...ADD, ...set(D)],
          ...[...get(D), ...get(R1), ...get(R0), ...SUB, ...i32(4), ...MUL, ...ADD, ...set(D_END)],
          ...forLoop(D, get(D), get(D_END), i32(4), [
            ...[...get(D), ...get(S), ...F32_LOAD, ...F32_STORE],
            ...[...get(S), ...get(SRC_ROW), ...ADD, ...set(S)],
          ]),
        ]),
      ]),
    ]),
  ]),
};
