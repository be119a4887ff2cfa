/**
 * Inputs from outside a data set's distribution, made offline: test images rotated by 90 degrees,
 * uniform noise, and the letters A to J rendered at 28x28 from the fonts of Debian packages (a stand-in
 * for notMNIST, which no package holds: clean glyphs, not notMNIST's varied typefaces and artwork). All
 * are pixel sets in [0, 1], NHWC.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { InputError } from '../errors.js';
import { seededRandom } from '../random.js';
import type { ImageSplit } from './datasets.js';

/** Images as float32 pixels in [0, 1], NHWC, with labels where they have any (-1 where not). */
export interface PixelSet {
  pixels: Float32Array;
  count: number;
  labels: Int32Array;
}

export function pixelsOf(split: ImageSplit, shape: [number, number, number], indices: ArrayLike<number>): PixelSet {
  const size = shape[0] * shape[1] * shape[2];
  const pixels = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  for (let i = 0; i < indices.length; i++) {
    const from = indices[i]! * size;
    for (let p = 0; p < size; p++) pixels[i * size + p] = split.images[from + p]! / 255;
    labels[i] = split.labels[indices[i]!]!;
  }
  return { pixels, count: indices.length, labels };
}

/** Each image turned 90 degrees counter-clockwise (square images). Labels are kept. */
export function rotated90(set: PixelSet, shape: [number, number, number]): PixelSet {
  const [h, w, c] = shape;
  if (h !== w) throw new InputError('rotated', `needs square images, got ${h}x${w}`);
  const size = h * w * c;
  const pixels = new Float32Array(set.pixels.length);
  for (let i = 0; i < set.count; i++) {
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        // The pixel at (y, x) of the result comes from (x, w - 1 - y) of the original.
        const from = i * size + (x * w + (w - 1 - y)) * c;
        const to = i * size + (y * w + x) * c;
        for (let k = 0; k < c; k++) pixels[to + k] = set.pixels[from + k]!;
      }
    }
  }
  return { pixels, count: set.count, labels: set.labels.slice() };
}

export function uniformNoise(count: number, shape: [number, number, number], seed: number): PixelSet {
  const random = seededRandom(seed);
  const pixels = Float32Array.from({ length: count * shape[0] * shape[1] * shape[2] }, () => random());
  return { pixels, count, labels: new Int32Array(count).fill(-1) };
}

/** Where the fonts of fonts-dejavu-core, fonts-liberation2 and fonts-freefont-ttf are installed. */
export const FONT_DIRS = [
  '/usr/share/fonts/truetype/dejavu',
  '/usr/share/fonts/truetype/liberation2',
  '/usr/share/fonts/truetype/freefont',
];
export const INSTALL_FONTS = 'sudo apt-get install fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf';

/** The .ttf files of FONT_DIRS (or `dirs`), sorted. */
export function fontFiles(dirs: string[] = FONT_DIRS): string[] {
  return dirs
    .filter((d) => existsSync(d) && statSync(d).isDirectory())
    .flatMap((d) =>
      readdirSync(d)
        .filter((f) => f.toLowerCase().endsWith('.ttf'))
        .map((f) => join(d, f)),
    )
    .sort();
}

const RENDER = 112;

/**
 * One glyph drawn white on black, cropped to its ink, scaled to fit a 20x20 box and centred in a 28x28
 * image, as MNIST's digits were made.
 */
function renderGlyph(letter: string, font: string): Float32Array {
  const svg =
    `<svg xmlns="http://www.w3.org/2000/svg" width="${RENDER}" height="${RENDER}">` +
    `<rect width="${RENDER}" height="${RENDER}" fill="black"/>` +
    `<text x="${RENDER / 2}" y="${RENDER * 0.75}" font-size="${RENDER * 0.6}" fill="white" text-anchor="middle">${letter}</text></svg>`;
  const image = new Resvg(svg, { font: { fontFiles: [font], loadSystemFonts: false } }).render();
  const rgba = image.pixels; // a getter that copies: read it once
  const ink = new Float32Array(RENDER * RENDER);
  for (let p = 0; p < ink.length; p++) ink[p] = rgba[p * 4]! / 255;
  let [top, bottom, left, right] = [RENDER, -1, RENDER, -1];
  for (let y = 0; y < RENDER; y++) {
    for (let x = 0; x < RENDER; x++) {
      if (ink[y * RENDER + x]! > 0.05) {
        top = Math.min(top, y);
        bottom = Math.max(bottom, y);
        left = Math.min(left, x);
        right = Math.max(right, x);
      }
    }
  }
  const out = new Float32Array(28 * 28);
  if (bottom < 0) return out;
  const boxH = bottom - top + 1;
  const boxW = right - left + 1;
  const scale = 20 / Math.max(boxH, boxW);
  const outH = Math.max(1, Math.round(boxH * scale));
  const outW = Math.max(1, Math.round(boxW * scale));
  const y0 = Math.floor((28 - outH) / 2);
  const x0 = Math.floor((28 - outW) / 2);
  // Area averaging: each output pixel is the mean of the source pixels it covers.
  for (let oy = 0; oy < outH; oy++) {
    for (let ox = 0; ox < outW; ox++) {
      const sy0 = top + Math.floor(oy / scale);
      const sy1 = Math.max(sy0 + 1, top + Math.floor((oy + 1) / scale));
      const sx0 = left + Math.floor(ox / scale);
      const sx1 = Math.max(sx0 + 1, left + Math.floor((ox + 1) / scale));
      let sum = 0;
      let n = 0;
      for (let sy = sy0; sy < Math.min(sy1, bottom + 1); sy++) {
        for (let sx = sx0; sx < Math.min(sx1, right + 1); sx++) {
          sum += ink[sy * RENDER + sx]!;
          n++;
        }
      }
      out[(y0 + oy) * 28 + x0 + ox] = n > 0 ? sum / n : 0;
    }
  }
  return out;
}

export const LETTERS = 'ABCDEFGHIJ';

/**
 * The letters A-J in every installed font (labels 0-9 for A-J), for 28x28x1 inputs; `fonts` overrides
 * the font files.
 */
export function renderedLetters(
  shape: [number, number, number],
  fonts: string[] = fontFiles(),
): PixelSet & { fonts: number } {
  if (shape[0] !== 28 || shape[1] !== 28 || shape[2] !== 1)
    throw new InputError('letters', `are rendered at 28x28x1; this network takes ${shape.join('x')}`);
  if (fonts.length === 0)
    throw new InputError('letters', `no fonts found in ${FONT_DIRS.join(', ')}: ${INSTALL_FONTS}`);
  const count = fonts.length * LETTERS.length;
  const pixels = new Float32Array(count * 28 * 28);
  const labels = new Int32Array(count);
  let i = 0;
  for (const font of fonts) {
    for (let l = 0; l < LETTERS.length; l++) {
      pixels.set(renderGlyph(LETTERS[l]!, font), i * 28 * 28);
      labels[i++] = l;
    }
  }
  return { pixels, count, labels, fonts: fonts.length };
}
