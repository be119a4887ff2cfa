/**
 * MATLAB level 5 MAT-files (the format of SVHN's cropped digits), numeric arrays only: a 128-byte
 * header, then data elements, each an 8-byte tag (type, byte count; or the 4-byte "small element"
 * form) padded to 8 bytes; miCOMPRESSED elements hold one zlib-deflated element. An miMATRIX element
 * holds array flags (class), dimensions, a name and the real part, stored column-major.
 * Reference: MathWorks, "MAT-File Format" (matfile_format.pdf), chapter 1.
 */
import { deflateSync, inflateSync } from 'node:zlib';
import { InputError } from '../errors.js';

export interface MatArray {
  name: string;
  /** MATLAB class: 'double', 'single', 'uint8', 'int32', ... */
  className: string;
  /** Dimensions as MATLAB lists them (column-major: the first index varies fastest). */
  dims: number[];
  data: Float64Array | Uint8Array;
}

const MI = {
  INT8: 1,
  UINT8: 2,
  INT16: 3,
  UINT16: 4,
  INT32: 5,
  UINT32: 6,
  SINGLE: 7,
  DOUBLE: 9,
  INT64: 12,
  UINT64: 13,
  MATRIX: 14,
  COMPRESSED: 15,
};
const CLASSES: Record<number, string> = {
  6: 'double',
  7: 'single',
  8: 'int8',
  9: 'uint8',
  10: 'int16',
  11: 'uint16',
  12: 'int32',
  13: 'uint32',
  14: 'int64',
  15: 'uint64',
};
const SIZES: Record<number, number> = { 1: 1, 2: 1, 3: 2, 4: 2, 5: 4, 6: 4, 7: 4, 9: 8, 12: 8, 13: 8 };

interface Element {
  type: number;
  data: Uint8Array;
  /** Offset just past the element, padding included. */
  next: number;
}

function readElement(bytes: Uint8Array, offset: number, little: boolean, fail: (what: string) => never): Element {
  if (offset + 8 > bytes.length) fail(`truncated: a data element's tag at byte ${offset} is cut off`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const first = view.getUint32(offset, little);
  if (first >>> 16 !== 0) {
    // Small data element: type and size share the first 4 bytes, the data the next 4.
    const size = first >>> 16;
    return { type: first & 0xffff, data: bytes.subarray(offset + 4, offset + 4 + size), next: offset + 8 };
  }
  const size = view.getUint32(offset + 4, little);
  const start = offset + 8;
  if (start + size > bytes.length) {
    fail(`truncated: a data element at byte ${offset} declares ${size} bytes, ${bytes.length - start} remain`);
  }
  const padded = first === MI.COMPRESSED ? size : Math.ceil(size / 8) * 8;
  return { type: first, data: bytes.subarray(start, start + size), next: start + padded };
}

function numbers(element: Element, little: boolean, fail: (what: string) => never): Float64Array | Uint8Array {
  if (element.type === MI.UINT8) return element.data;
  const size = SIZES[element.type];
  if (size === undefined) fail(`unsupported numeric data type ${element.type}`);
  const view = new DataView(element.data.buffer, element.data.byteOffset, element.data.byteLength);
  const count = Math.floor(element.data.length / size!);
  const out = new Float64Array(count);
  const get: Record<number, (o: number) => number> = {
    [MI.INT8]: (o) => view.getInt8(o),
    [MI.INT16]: (o) => view.getInt16(o, little),
    [MI.UINT16]: (o) => view.getUint16(o, little),
    [MI.INT32]: (o) => view.getInt32(o, little),
    [MI.UINT32]: (o) => view.getUint32(o, little),
    [MI.SINGLE]: (o) => view.getFloat32(o, little),
    [MI.DOUBLE]: (o) => view.getFloat64(o, little),
    [MI.INT64]: (o) => Number(view.getBigInt64(o, little)),
    [MI.UINT64]: (o) => Number(view.getBigUint64(o, little)),
  };
  const read = get[element.type]!;
  for (let k = 0; k < count; k++) out[k] = read(k * size!);
  return out;
}

function parseMatrix(data: Uint8Array, little: boolean, fail: (what: string) => never): MatArray | undefined {
  const flags = readElement(data, 0, little, fail);
  const view = new DataView(flags.data.buffer, flags.data.byteOffset, flags.data.byteLength);
  const classCode = view.getUint32(0, little) & 0xff;
  const complex = (view.getUint32(0, little) & 0x800) !== 0;
  const className = CLASSES[classCode];
  const dimsElement = readElement(data, flags.next, little, fail);
  const dims = Array.from(numbers(dimsElement, little, fail));
  const nameElement = readElement(data, dimsElement.next, little, fail);
  const name = new TextDecoder('latin1').decode(nameElement.data);
  if (className === undefined || complex) return undefined; // cells, structs, sparse, complex: not ours
  const real = readElement(data, nameElement.next, little, fail);
  const values = numbers(real, little, fail);
  const count = dims.reduce((a, n) => a * n, 1);
  if (values.length !== count) {
    fail(`variable '${name}' has ${values.length} values for dimensions [${dims.join(', ')}] (${count})`);
  }
  return { name, className, dims, data: values };
}

/** Reads every numeric array of a level 5 MAT-file; `name` is the file's name for error messages. */
export function parseMat(bytes: Uint8Array, name: string): Map<string, MatArray> {
  const fail = (what: string): never => {
    throw new InputError(name, what);
  };
  const text = new TextDecoder('latin1').decode(bytes.subarray(0, Math.min(116, bytes.length)));
  if (text.startsWith('MATLAB 7.3')) {
    fail('is a MATLAB 7.3 (HDF5) file; expected a level 5 MAT-file (save with -v7, or use the original SVHN files)');
  }
  if (bytes.length < 128 || !text.startsWith('MATLAB 5.0 MAT-file')) {
    fail('not a MATLAB level 5 MAT-file (its header does not start with "MATLAB 5.0 MAT-file")');
  }
  const endian = String.fromCharCode(bytes[126]!, bytes[127]!);
  if (endian !== 'IM' && endian !== 'MI') fail(`unknown byte order mark '${endian}' in the MAT-file header`);
  const little = endian === 'IM';
  const arrays = new Map<string, MatArray>();
  for (let offset = 128; offset < bytes.length;) {
    let element = readElement(bytes, offset, little, fail);
    offset = element.next;
    if (element.type === MI.COMPRESSED) {
      let inner: Uint8Array;
      try {
        inner = inflateSync(element.data);
      } catch (error) {
        fail(`corrupt compressed data element (${(error as Error).message})`);
      }
      element = readElement(inner!, 0, little, fail);
    }
    if (element.type !== MI.MATRIX) continue;
    const matrix = parseMatrix(element.data, little, fail);
    if (matrix) arrays.set(matrix.name, matrix);
  }
  return arrays;
}

function tag(type: number, size: number): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint32(0, type, true);
  view.setUint32(4, size, true);
  return out;
}

function element(type: number, data: Uint8Array): Uint8Array {
  const padded = new Uint8Array(8 + Math.ceil(data.length / 8) * 8);
  padded.set(tag(type, data.length));
  padded.set(data, 8);
  return padded;
}

/** Writes numeric arrays (uint8 or double) as a little-endian level 5 MAT-file, compressed or not. */
export function encodeMat(arrays: MatArray[], compress = true): Uint8Array {
  const header = new Uint8Array(128).fill(0x20);
  header.set(new TextEncoder().encode('MATLAB 5.0 MAT-file, written by snnl'));
  header.set([0, 0, 0, 0, 0, 0, 0, 0], 116);
  header.set([0x00, 0x01, 0x49, 0x4d], 124); // version 0x0100, 'IM'
  const parts: Uint8Array[] = [header];
  for (const array of arrays) {
    const uint8 = array.className === 'uint8';
    const flags = new Uint8Array(8);
    new DataView(flags.buffer).setUint32(0, uint8 ? 9 : 6, true);
    const dims = new Uint8Array(4 * array.dims.length);
    array.dims.forEach((n, k) => new DataView(dims.buffer).setInt32(4 * k, n, true));
    let real: Uint8Array;
    if (uint8) real = Uint8Array.from(array.data);
    else {
      real = new Uint8Array(8 * array.data.length);
      array.data.forEach((v, k) => new DataView(real.buffer).setFloat64(8 * k, v, true));
    }
    const body = Buffer.concat([
      element(MI.UINT32, flags),
      element(MI.INT32, dims),
      element(MI.INT8, new TextEncoder().encode(array.name)),
      element(uint8 ? MI.UINT8 : MI.DOUBLE, real),
    ]);
    const matrix = Buffer.concat([tag(MI.MATRIX, body.length), body]);
    if (compress) {
      const deflated = deflateSync(matrix);
      parts.push(tag(MI.COMPRESSED, deflated.length), deflated);
    } else parts.push(matrix);
  }
  return Buffer.concat(parts);
}
