/**
 * The IDX format of MNIST, Fashion-MNIST, KMNIST and EMNIST (http://yann.lecun.com/exdb/mnist/):
 * two zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions, each dimension as a
 * big-endian uint32, then the data. Files may be gzipped (detected by the gzip magic number).
 */
import { gunzipSync } from 'node:zlib';
import { InputError } from '../errors.js';

export interface IdxArray {
  shape: number[];
  data: Uint8Array;
}

/** Gunzips the bytes when they start with the gzip magic number, naming the file if that fails. */
export function maybeGunzip(bytes: Uint8Array, name: string): Uint8Array {
  if (bytes.length < 2 || bytes[0] !== 0x1f || bytes[1] !== 0x8b) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (error) {
    throw new InputError(name, `corrupt gzip data (${(error as Error).message}); download the file again`);
  }
}

export function parseIdx(raw: Uint8Array, name: string): IdxArray {
  const bytes = maybeGunzip(raw, name);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new InputError(name, 'wrong magic number: not an IDX file (expected two zero bytes, a type and a rank)');
  }
  if (bytes[2] !== 0x08) {
    throw new InputError(
      name,
      `IDX element type 0x${bytes[2]!.toString(16)} is not supported; expected 0x08 (unsigned bytes)`,
    );
  }
  const rank = bytes[3]!;
  if (rank < 1 || bytes.length < 4 + 4 * rank) throw new InputError(name, `truncated IDX header (rank ${rank})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const shape = Array.from({ length: rank }, (_, k) => view.getUint32(4 + 4 * k, false));
  const size = shape.reduce((a, n) => a * n, 1);
  const start = 4 + 4 * rank;
  if (bytes.length - start < size) {
    throw new InputError(
      name,
      `truncated: its header declares shape [${shape.join(', ')}] (${size} bytes), the file holds ${bytes.length - start}`,
    );
  }
  if (bytes.length - start > size) {
    throw new InputError(
      name,
      `has ${bytes.length - start - size} bytes more than its header's shape [${shape.join(', ')}]`,
    );
  }
  return { shape, data: bytes.subarray(start, start + size) };
}

/** Encodes unsigned bytes as an IDX file (for tests and exports). */
export function encodeIdx(data: Uint8Array, shape: number[]): Uint8Array {
  const out = new Uint8Array(4 + 4 * shape.length + data.length);
  out.set([0, 0, 0x08, shape.length]);
  const view = new DataView(out.buffer);
  shape.forEach((n, k) => view.setUint32(4 + 4 * k, n, false));
  out.set(data, 4 + 4 * shape.length);
  return out;
}
