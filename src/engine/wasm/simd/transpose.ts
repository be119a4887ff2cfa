/**
 * A batched, strided transpose of float32 data as a WebAssembly function (src/engine/wasm/simd/asm.ts):
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
  AND,
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
  times,
  V128_LOAD,
  V128_STORE,
  type FunctionCode,
} from './asm.js';

const TILE = 32;

const [SRC, DST, ROWS, COLS, SRC_ROW, DST_COL, COUNT, SRC_COUNT, DST_COUNT] = [0, 1, 2, 3, 4, 5, 6, 7, 8];
const [Q, R0, R1, C0, C1, C, S, D, D_END, SQ, DQ] = [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];

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

/**
 * The same transpose of blocks of `block` bytes (a multiple of 4) instead of single floats:
 *
 *   transposeBlocks(src, dst, rows, cols, srcRow, dstCol, count, srcCount, dstCount, block)
 *   dst block [q dstCount + c dstCol + r block] = src block [q srcCount + r srcRow + c block]
 *
 * ([a, b, c] -> [b, a, c], a dense layer's or convolution's batch moved inward.) Sixteen bytes at a time,
 * then four.
 */
const BLOCK = 9;
const [BQ, BR, BC, BS, BD, BSQ, BDQ, BE, BE4] = [10, 11, 12, 13, 14, 15, 16, 17, 18];

export const transposeBlocksFunction: FunctionCode = {
  name: 'transposeBlocks',
  params: Array<number>(10).fill(I32),
  locals: [[9, I32]],
  code: forLoop(BQ, i32(0), get(COUNT), i32(1), [
    ...[...get(SRC), ...times(BQ, SRC_COUNT), ...ADD, ...set(BSQ)],
    ...[...get(DST), ...times(BQ, DST_COUNT), ...ADD, ...set(BDQ)],
    ...[...get(BLOCK), ...i32(-16), ...AND, ...set(BE4)],
    ...forLoop(BC, i32(0), get(COLS), i32(1), [
      ...forLoop(BR, i32(0), get(ROWS), i32(1), [
        // s = sq + r srcRow + c block;  d = dq + c dstCol + r block
        ...[...get(BSQ), ...times(BR, SRC_ROW), ...ADD, ...times(BC, BLOCK), ...ADD, ...set(BS)],
        ...[...get(BDQ), ...times(BC, DST_COL), ...ADD, ...times(BR, BLOCK), ...ADD, ...set(BD)],
        ...forLoop(BE, i32(0), get(BE4), i32(16), [
          ...[...get(BD), ...get(BE), ...ADD, ...get(BS), ...get(BE), ...ADD, ...V128_LOAD, ...V128_STORE],
        ]),
        ...forLoop(BE, get(BE4), get(BLOCK), i32(4), [
          ...[...get(BD), ...get(BE), ...ADD, ...get(BS), ...get(BE), ...ADD, ...F32_LOAD, ...F32_STORE],
        ]),
      ]),
    ]),
  ]),
};
