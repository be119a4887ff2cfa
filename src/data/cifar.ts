/**
 * CIFAR-10's binary version (https://www.cs.toronto.edu/~kriz/cifar.html): data_batch_1..5.bin and
 * test_batch.bin, each 10,000 records of 1 label byte and 3,072 pixel bytes (the red, green and blue
 * 32 x 32 planes), read from the extracted folder or straight from cifar-10-binary.tar.gz.
 */
import { InputError } from '../errors.js';
import { maybeGunzip } from './idx.js';

export const CIFAR_RECORD = 1 + 3 * 32 * 32;
export const CIFAR_TRAIN_FILES = [1, 2, 3, 4, 5].map((k) => `data_batch_${k}.bin`);
export const CIFAR_TEST_FILE = 'test_batch.bin';
export const CIFAR_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'];

export interface ImageSplit {
  /** Pixels in NHWC order, one byte each. */
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
}

/** Decodes one batch file into NHWC images and labels. */
export function parseCifarBatch(bytes: Uint8Array, name: string): ImageSplit {
  if (bytes.length === 0 || bytes.length % CIFAR_RECORD !== 0) {
    throw new InputError(
      name,
      `truncated or not a CIFAR-10 batch: ${bytes.length} bytes is not a whole number of ${CIFAR_RECORD}-byte records`,
    );
  }
  const count = bytes.length / CIFAR_RECORD;
  const images = new Uint8Array(count * 3072);
  const labels = new Uint8Array(count);
  for (let n = 0; n < count; n++) {
    const record = n * CIFAR_RECORD;
    const label = bytes[record]!;
    if (label > 9) throw new InputError(name, `record ${n} has label ${label}; CIFAR-10 labels are 0..9`);
    labels[n] = label;
    const out = n * 3072;
    for (let p = 0; p < 1024; p++) {
      for (let c = 0; c < 3; c++) images[out + p * 3 + c] = bytes[record + 1 + c * 1024 + p]!;
    }
  }
  return { images, labels, count };
}

/** Joins splits in order. */
export function concatSplits(parts: ImageSplit[]): ImageSplit {
  const count = parts.reduce((a, p) => a + p.count, 0);
  const images = new Uint8Array(parts.reduce((a, p) => a + p.images.length, 0));
  const labels = new Uint8Array(count);
  let i = 0;
  let l = 0;
  for (const p of parts) {
    images.set(p.images, i);
    labels.set(p.labels, l);
    i += p.images.length;
    l += p.count;
  }
  return { images, labels, count };
}

/** The regular files of a (possibly gzipped) POSIX tar archive, by base name. */
export function untar(raw: Uint8Array, name: string): Map<string, Uint8Array> {
  const bytes = maybeGunzip(raw, name);
  const files = new Map<string, Uint8Array>();
  const text = (start: number, length: number) =>
    new TextDecoder('latin1').decode(bytes.subarray(start, start + length)).replace(/\0.*$/s, '');
  for (let offset = 0; offset + 512 <= bytes.length;) {
    const header = bytes.subarray(offset, offset + 512);
    if (header.every((b) => b === 0)) break;
    const sizeText = text(offset + 124, 12).trim();
    const size = parseInt(sizeText, 8);
    if (!/^[0-7]+$/.test(sizeText) || !Number.isFinite(size)) {
      throw new InputError(name, `not a tar archive (bad header at byte ${offset})`);
    }
    const prefix = text(offset + 345, 155);
    const path = (prefix ? prefix + '/' : '') + text(offset, 100);
    const type = String.fromCharCode(header[156]!);
    const start = offset + 512;
    if (start + size > bytes.length) throw new InputError(name, `truncated: '${path}' in the archive is cut off`);
    if (type === '0' || type === '\0') files.set(path.split('/').pop()!, bytes.subarray(start, start + size));
    offset = start + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Writes a plain tar archive (for tests). */
export function encodeTar(entries: Array<[string, Uint8Array]>): Uint8Array {
  const blocks: Uint8Array[] = [];
  for (const [path, data] of entries) {
    const header = new Uint8Array(512);
    header.set(new TextEncoder().encode(path), 0);
    header.set(new TextEncoder().encode('0000644\0'), 100);
    header.set(new TextEncoder().encode('0000000\0'), 108);
    header.set(new TextEncoder().encode('0000000\0'), 116);
    header.set(new TextEncoder().encode(data.length.toString(8).padStart(11, '0') + '\0'), 124);
    header.set(new TextEncoder().encode('00000000000\0'), 136);
    header[156] = '0'.charCodeAt(0);
    header.set(new TextEncoder().encode('ustar\0' + '00'), 257);
    header.fill(0x20, 148, 156);
    const sum = header.reduce((a, b) => a + b, 0);
    header.set(new TextEncoder().encode(sum.toString(8).padStart(6, '0') + '\0 '), 148);
    blocks.push(header, data, new Uint8Array((512 - (data.length % 512)) % 512));
  }
  blocks.push(new Uint8Array(1024));
  return Buffer.concat(blocks);
}
