/**
 * Column sums of a [rows, width] float32 matrix in chunks of rows, as a WebAssembly SIMD function
 * (src/engine/wasm/simd/asm.ts): a bias gradient, the sum of a [n, h, w, c] gradient over its leading axes.
 *
 *   sumRows(x, partials, rows, width, chunk, stride)   (addresses in bytes; width a multiple of 4, stride
 *                                                      the row length in floats)
 *   partials[k, c] += sum of x[r, c] over rows r of chunk k (r / chunk = k) and c < width, in float32
 *   (partials has `width` floats a chunk)
 *
 * The chunks keep float32 sums short; the caller adds the partial sums in double precision.
 */
import {
  ADD,
  DIV_U,
  F32X4_ADD,
  forLoop,
  get,
  I32,
  i32,
  MUL,
  set,
  V128_LOAD,
  V128_STORE,
  type FunctionCode,
} from './asm.js';

const [X, PARTIALS, ROWS, WIDTH, CHUNK, STRIDE] = [0, 1, 2, 3, 4, 5];
const [R, S, P, END] = [6, 7, 8, 9];

export const sumRowsFunction: FunctionCode = {
  name: 'sumRows',
  params: Array<number>(6).fill(I32),
  locals: [[4, I32]],
  code: [
    ...forLoop(R, i32(0), get(ROWS), i32(1), [
      ...[...get(X), ...get(R), ...get(STRIDE), ...MUL, ...i32(4), ...MUL, ...ADD, ...set(S)],
      // p = partials + 4 width (r / chunk); end = p + 4 width
      ...[
        ...get(PARTIALS),
        ...get(R),
        ...get(CHUNK),
        ...DIV_U,
        ...get(WIDTH),
        ...MUL,
        ...i32(4),
        ...MUL,
        ...ADD,
        ...set(P),
      ],
      ...[...get(P), ...get(WIDTH), ...i32(4), ...MUL, ...ADD, ...set(END)],
      ...forLoop(P, get(P), get(END), i32(16), [
        ...[...get(P), ...get(P), ...V128_LOAD, ...get(S), ...V128_LOAD, ...F32X4_ADD, ...V128_STORE],
        ...[...get(S), ...i32(16), ...ADD, ...set(S)],
      ]),
    ]),
  ],
};
