/**
 * The transposed column matrix of a convolution's input as a WebAssembly function (src/engine/wasm/simd/asm.ts):
 * one row per filter tap, holding that tap's input pixel for every output position, zero outside the image.
 *
 *   im2colT(x, colT, images, height, width, cin, kw, oh, ow, sh, sw, top, left, ky0, ky1)   (addresses in bytes)
 *   colT[(ky kw + kx) cin + ci, (n oh + oy) ow + ox] = x[n, oy sh - top + ky, ox sw - left + kx, ci]
 *   for filter rows ky0 <= ky < ky1 (colT is the whole matrix; those rows are written)
 */
import {
  ADD,
  ELSE,
  END,
  F32_LOAD,
  F32_STORE,
  F32_ZERO,
  forLoop,
  get,
  I32,
  i32,
  IF,
  IF_F32,
  LT,
  MUL,
  set,
  SUB,
  times,
  type FunctionCode,
} from './asm.js';

const [X, COLT, IMAGES, HEIGHT, WIDTH, CIN, KW, OH, OW, SH, SW, TOP, LEFT, KY0, KY1] = [
  0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14,
];
const [KY, KX, CI, N, OY, OX, IY, IX, K, BASE] = [15, 16, 17, 18, 19, 20, 21, 22, 23, 24];

/** if with a float32 result */

export const im2colTFunction: FunctionCode = {
  name: 'im2colT',
  params: Array<number>(15).fill(I32),
  locals: [[10, I32]],
  code: [
    // k = colT + 4 ky0 kw cin images oh ow
    ...[...get(COLT), ...times(KY0, KW), ...get(CIN), ...MUL, ...get(IMAGES), ...MUL, ...get(OH), ...MUL],
    ...[...get(OW), ...MUL, ...i32(4), ...MUL, ...ADD, ...set(K)],
    ...forLoop(KY, get(KY0), get(KY1), i32(1), [
      ...forLoop(KX, i32(0), get(KW), i32(1), [
        ...forLoop(CI, i32(0), get(CIN), i32(1), [
          ...forLoop(N, i32(0), get(IMAGES), i32(1), [
            ...forLoop(OY, i32(0), get(OH), i32(1), [
              // iy = oy sh - top + ky; outside when iy >=u height (a negative iy is a large unsigned)
              ...[...times(OY, SH), ...get(TOP), ...SUB, ...get(KY), ...ADD, ...set(IY)],
              ...[...get(IY), ...get(HEIGHT), ...LT, ...IF],
              // base = x + 4 ((n height + iy) width cin + ci)
              ...[...get(X), ...times(N, HEIGHT), ...get(IY), ...ADD, ...get(WIDTH), ...MUL, ...get(CIN), ...MUL],
              ...[...get(CI), ...ADD, ...i32(4), ...MUL, ...ADD, ...set(BASE)],
              ...forLoop(OX, i32(0), get(OW), i32(1), [
                ...[...times(OX, SW), ...get(LEFT), ...SUB, ...get(KX), ...ADD, ...set(IX)],
                ...[...get(K), ...get(IX), ...get(WIDTH), ...LT, ...IF_F32],
                ...[...get(BASE), ...get(IX), ...get(CIN), ...MUL, ...i32(4), ...MUL, ...ADD, ...F32_LOAD],
                ...ELSE,
                ...F32_ZERO,
                ...END,
                ...F32_STORE,
                ...[...get(K), ...i32(4), ...ADD, ...set(K)],
              ]),
              ...ELSE,
              ...forLoop(OX, i32(0), get(OW), i32(1), [
                ...[...get(K), ...F32_ZERO, ...F32_STORE],
                ...[...get(K), ...i32(4), ...ADD, ...set(K)],
              ]),
              ...END,
            ]),
          ]),
        ]),
      ]),
    ]),
  ],
};
