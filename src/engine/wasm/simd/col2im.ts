/**
 * col2im as a WebAssembly SIMD function (src/engine/wasm/simd/asm.ts): adds each row of the column matrix
 * of a convolution's input gradient back into the input window it came from.
 *
 *   col2im(col, dx, images, oh, ow, kh, kw, sh, sw, top, left, height, width, cin)   (addresses in bytes)
 *   for every image n, output position (oy, ox) and tap (ky, kx) whose input pixel
 *   (iy, ix) = (oy sh - top + ky, ox sw - left + kx) is inside the image:
 *     dx[n, iy, ix, :] += col[(n oh + oy) ow + ox, (ky kw + kx) cin : ... + cin]
 *
 * dx must hold zeros (or what is to be added to). Four channels at a time, then one at a time.
 */
import {
  ADD,
  AND,
  END,
  F32_ADD,
  F32_LOAD,
  F32_STORE,
  F32X4_ADD,
  forLoop,
  get,
  I32,
  i32,
  IF,
  LT,
  MUL,
  set,
  SUB,
  times,
  V128_LOAD,
  V128_STORE,
  type FunctionCode,
} from './asm.js';

const [COL, DX, IMAGES, OH, OW, KH, KW, SH, SW, TOP, LEFT, HEIGHT, WIDTH, CIN] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
];
const [N, OY, OX, KY, KX, IY, IX, ROW, SRC, DST, END4, RUN_END] = [14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25];

const addRun = [
  // src = row + 4 (ky kw + kx) cin;  dst = dx + 4 ((n height + iy) width + ix) cin
  ...[...get(ROW), ...times(KY, KW), ...get(KX), ...ADD, ...get(CIN), ...MUL, ...i32(4), ...MUL, ...ADD, ...set(SRC)],
  ...[...get(DX), ...times(N, HEIGHT), ...get(IY), ...ADD, ...get(WIDTH), ...MUL, ...get(IX), ...ADD],
  ...[...get(CIN), ...MUL, ...i32(4), ...MUL, ...ADD, ...set(DST)],
  ...[...get(DST), ...get(CIN), ...i32(-4), ...AND, ...i32(4), ...MUL, ...ADD, ...set(END4)],
  ...[...get(DST), ...get(CIN), ...i32(4), ...MUL, ...ADD, ...set(RUN_END)],
  ...forLoop(DST, get(DST), get(END4), i32(16), [
    ...[...get(DST), ...get(DST), ...V128_LOAD, ...get(SRC), ...V128_LOAD, ...F32X4_ADD, ...V128_STORE],
    ...[...get(SRC), ...i32(16), ...ADD, ...set(SRC)],
  ]),
  ...forLoop(DST, get(DST), get(RUN_END), i32(4), [
    ...[...get(DST), ...get(DST), ...F32_LOAD, ...get(SRC), ...F32_LOAD, ...F32_ADD, ...F32_STORE],
    ...[...get(SRC), ...i32(4), ...ADD, ...set(SRC)],
  ]),
];

export const col2imFunction: FunctionCode = {
  name: 'col2im',
  params: Array<number>(14).fill(I32),
  locals: [[12, I32]],
  code: [
    ...[...get(COL), ...set(ROW)],
    ...forLoop(N, i32(0), get(IMAGES), i32(1), [
      ...forLoop(OY, i32(0), get(OH), i32(1), [
        ...forLoop(OX, i32(0), get(OW), i32(1), [
          ...forLoop(KY, i32(0), get(KH), i32(1), [
            // iy = oy sh - top + ky; inside when iy <u height (a negative iy is a large unsigned)
            ...[...times(OY, SH), ...get(TOP), ...SUB, ...get(KY), ...ADD, ...set(IY)],
            ...[...get(IY), ...get(HEIGHT), ...LT, ...IF],
            ...forLoop(KX, i32(0), get(KW), i32(1), [
              ...[...times(OX, SW), ...get(LEFT), ...SUB, ...get(KX), ...ADD, ...set(IX)],
              ...[...get(IX), ...get(WIDTH), ...LT, ...IF, ...addRun, ...END],
            ]),
            ...END,
          ]),
          // the next column row: kh kw cin floats on
          ...[...get(ROW), ...times(KH, KW), ...get(CIN), ...MUL, ...i32(4), ...MUL, ...ADD, ...set(ROW)],
        ]),
      ]),
    ]),
  ],
};
