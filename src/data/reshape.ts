/**
 * A data set drawn at another image shape: each image centred on a zero (black) canvas of the new height
 * and width, and a one-channel image repeated into every channel. This lets a 32x32x3 network (the
 * CIFAR-10 ResNet) train on 28x28x1 digits or clothes unchanged.
 */
import { InputError } from '../errors.js';
import type { Dataset, ImageSplit } from './datasets.js';

/** Parses '32x32x3' into a shape; errors name `flag`. */
export function parseImageShape(value: string, flag: string): [number, number, number] {
  const parts = value.split('x').map((s) => Number(s));
  if (parts.length !== 3 || parts.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new InputError(flag, `expected HEIGHTxWIDTHxCHANNELS such as 32x32x3, got '${value}'`);
  }
  return parts as [number, number, number];
}

function reshapeSplit(split: ImageSplit, from: [number, number, number], to: [number, number, number]): ImageSplit {
  const [h, w, c] = from;
  const [H, W, C] = to;
  const top = Math.floor((H - h) / 2);
  const left = Math.floor((W - w) / 2);
  const images = new Uint8Array(split.count * H * W * C);
  for (let n = 0; n < split.count; n++) {
    const src = n * h * w * c;
    const dst = n * H * W * C;
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const s = src + (y * w + x) * c;
        const d = dst + ((y + top) * W + (x + left)) * C;
        for (let k = 0; k < C; k++) images[d + k] = split.images[s + (c === 1 ? 0 : k)]!;
      }
    }
  }
  return { images, labels: split.labels, count: split.count };
}

/** Throws where images of shape `from` cannot be drawn at `to` (smaller, or channels that do not repeat). */
export function checkImageShape(
  name: string,
  from: [number, number, number],
  to: [number, number, number],
  flag: string,
): void {
  if (to[0] < from[0] || to[1] < from[1] || (from[2] !== to[2] && from[2] !== 1)) {
    throw new InputError(
      flag,
      `${name}'s ${from.join('x')} images can be padded to a larger height and width, and one channel ` +
        `repeated into several, not drawn at ${to.join('x')}`,
    );
  }
}

/**
 * The data set padded to `shape` (height and width at least the data's; channels equal, or 1 repeated).
 * The same shape returns the data set itself.
 */
export function withImageShape(dataset: Dataset, shape: [number, number, number], flag = 'inputShape'): Dataset {
  const from = dataset.imageShape;
  if (from.every((n, k) => n === shape[k])) return dataset;
  checkImageShape(dataset.name, from, shape, flag);
  return {
    ...dataset,
    imageShape: shape,
    train: reshapeSplit(dataset.train, from, shape),
    test: reshapeSplit(dataset.test, from, shape),
  };
}
