/** Convolution geometry for the column (im2col / col2im) paths of both convolution gradients, and their JavaScript forms. */
import { backend_util } from '@tensorflow/tfjs-core';
import { type Col2imGeometry } from './simd/runtime.js';
export interface ConvAttrs {
  strides: number | [number, number];
  pad: 'valid' | 'same' | number | backend_util.ExplicitPadding;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
  filterShape?: [number, number, number, number];
  inputShape?: [number, number, number, number];
}

export function checkNhwc(attrs: ConvAttrs, kernel: string): void {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') {
    throw new Error(`${kernel} on wasm supports NHWC data only, got ${attrs.dataFormat}`);
  }
}

/** A convolution's geometry as the column functions take it (src/engine/wasm/simd/runtime.ts). */
export function columnsGeometry(info: backend_util.Conv2DInfo): Col2imGeometry {
  return {
    oh: info.outHeight,
    ow: info.outWidth,
    kh: info.filterHeight,
    kw: info.filterWidth,
    sh: info.strideHeight,
    sw: info.strideWidth,
    top: info.padInfo.top,
    left: info.padInfo.left,
    height: info.inHeight,
    width: info.inWidth,
    cin: info.inChannels,
  };
}

/** col2im in JavaScript (src/engine/wasm/simd/col2im.ts states it) for images [n0, n0 + count), where the runtime does not run. */
export function col2imInJs(from: Float32Array, to: Float32Array, n0: number, count: number, g: Col2imGeometry): void {
  const { oh, ow, kh, kw, sh, sw, top, left, height, width, cin } = g;
  const span = kh * kw * cin;
  let row = 0;
  for (let b = n0; b < n0 + count; b++) {
    for (let oy = 0; oy < oh; oy++) {
      for (let ox = 0; ox < ow; ox++, row += span) {
        for (let ky = 0; ky < kh; ky++) {
          const iy = oy * sh - top + ky;
          if (iy < 0 || iy >= height) continue;
          for (let kx = 0; kx < kw; kx++) {
            const ix = ox * sw - left + kx;
            if (ix < 0 || ix >= width) continue;
            const src = row + (ky * kw + kx) * cin;
            const dst = ((b * height + iy) * width + ix) * cin;
            for (let ch = 0; ch < cin; ch++) to[dst + ch] = to[dst + ch]! + from[src + ch]!;
          }
        }
      }
    }
  }
}

/** The transposed column matrix in JavaScript (src/engine/wasm/simd/im2col.ts states it), where the runtime does not run. */
export function columnsTInJs(from: Float32Array, to: Float32Array, images: number, g: Col2imGeometry): void {
  const { oh, ow, kh, kw, sh, sw, top, left, height, width, cin } = g;
  let k = 0;
  for (let ky = 0; ky < kh; ky++) {
    for (let kx = 0; kx < kw; kx++) {
      for (let ci = 0; ci < cin; ci++) {
        for (let b = 0; b < images; b++) {
          for (let oy = 0; oy < oh; oy++) {
            const iy = oy * sh - top + ky;
            if (iy < 0 || iy >= height) {
              to.fill(0, k, k + ow);
              k += ow;
              continue;
            }
            const base = (b * height + iy) * width;
            for (let ox = 0; ox < ow; ox++, k++) {
              const ix = ox * sw - left + kx;
              to[k] = ix < 0 || ix >= width ? 0 : from[(base + ix) * cin + ci]!;
            }
          }
        }
      }
    }
  }
}

/** The column matrix of one chunk of the columns way stays under this many floats (64 MiB). */
export const COLUMN_LIMIT = 16 * 1024 * 1024;
