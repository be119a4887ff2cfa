/**
 * NumPy's .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 * the magic "\x93NUMPY", a version, a header length, a Python dict literal with 'descr', 'fortran_order'
 * and 'shape', then the raw array. Versions 1-3, little and big endian, C and Fortran order; booleans,
 * integers of any width and floats of 16, 32 and 64 bits.
 */
import { InputError } from '../errors.js';

export interface NumericArray {
  /** Values in C (row-major) order. */
  values: Float64Array;
  shape: number[];
  /** The element type as stored, e.g. 'float32', 'int64', 'uint8', 'bool'. */
  dtype: string;
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

const KINDS: Record<string, Record<number, string>> = {
  f: { 2: 'float16', 4: 'float32', 8: 'float64' },
  i: { 1: 'int8', 2: 'int16', 4: 'int32', 8: 'int64' },
  u: { 1: 'uint8', 2: 'uint16', 4: 'uint32', 8: 'uint64' },
  b: { 1: 'bool' },
};

function float16(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

function reader(view: DataView, kind: string, size: number, little: boolean): (offset: number) => number {
  switch (`${kind}${size}`) {
    case 'f2':
      return (o) => float16(view.getUint16(o, little));
    case 'f4':
      return (o) => view.getFloat32(o, little);
    case 'f8':
      return (o) => view.getFloat64(o, little);
    case 'i1':
      return (o) => view.getInt8(o);
    case 'i2':
      return (o) => view.getInt16(o, little);
    case 'i4':
      return (o) => view.getInt32(o, little);
    case 'i8':
      return (o) => Number(view.getBigInt64(o, little));
    case 'u1':
    case 'b1':
      return (o) => view.getUint8(o);
    case 'u2':
      return (o) => view.getUint16(o, little);
    case 'u4':
      return (o) => view.getUint32(o, little);
    case 'u8':
      return (o) => Number(view.getBigUint64(o, little));
    default:
      throw new Error(`no reader for ${kind}${size}`);
  }
}

/** Decodes a .npy file's bytes; `name` is the file's name for error messages. */
export function parseNpy(bytes: Uint8Array, name: string): NumericArray {
  const fail = (what: string): never => {
    throw new InputError(name, what);
  };
  if (bytes.length < 10 || MAGIC.some((m, k) => bytes[k] !== m)) {
    fail('not a NumPy .npy file (it does not start with the \\x93NUMPY magic string)');
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6]!;
  if (major < 1 || major > 3) fail(`unsupported .npy format version ${major}.${bytes[7]}`);
  const headerStart = major === 1 ? 10 : 12;
  if (bytes.length < headerStart) fail('truncated .npy header');
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataStart = headerStart + headerLength;
  if (bytes.length < dataStart) {
    fail(`truncated .npy header: it declares ${headerLength} bytes, the file has ${bytes.length - headerStart}`);
  }
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(header)?.[1];
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header)?.[1];
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(header)?.[1];
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    fail(`malformed .npy header (expected 'descr', 'fortran_order' and 'shape'): ${header.trim()}`);
  }
  const match = /^([<>|=])([fiub])(\d+)$/.exec(descr!);
  const dtype = match ? KINDS[match[2]!]?.[Number(match[3])] : undefined;
  if (!match || dtype === undefined) {
    fail(`unsupported .npy element type '${descr}'; expected floats, integers or booleans`);
  }
  const [, order, kind, sizeText] = match!;
  const size = Number(sizeText);
  const shape = shapeText!
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0)
    .map(Number);
  if (shape.some((n) => !Number.isInteger(n) || n < 0)) fail(`malformed .npy shape (${shapeText})`);
  const count = shape.reduce((a, n) => a * n, 1);
  const needed = count * size;
  if (bytes.length - dataStart < needed) {
    fail(
      `truncated: shape (${shape.join(', ')}) of ${dtype} needs ${needed} bytes of data, ` +
        `the file has ${bytes.length - dataStart}`,
    );
  }
  const read = reader(view, kind!, size, order !== '>');
  const values = new Float64Array(count);
  if (fortran === 'True' && shape.length > 1) {
    // Fortran order: the first index varies fastest. Walk C order, mapping each index to its offset.
    const strides = shape.map((_, k) => shape.slice(0, k).reduce((a, n) => a * n, 1));
    const index = new Array<number>(shape.length).fill(0);
    for (let c = 0; c < count; c++) {
      let f = 0;
      for (let k = 0; k < shape.length; k++) f += index[k]! * strides[k]!;
      values[c] = read(dataStart + f * size);
      for (let k = shape.length - 1; k >= 0; k--) {
        if (++index[k]! < shape[k]!) break;
        index[k] = 0;
      }
    }
  } else {
    for (let c = 0; c < count; c++) values[c] = read(dataStart + c * size);
  }
  return { values, shape, dtype: dtype! };
}

const WRITERS: Record<string, { descr: string; size: number; write: (v: DataView, o: number, x: number) => void }> = {
  float32: { descr: '<f4', size: 4, write: (v, o, x) => v.setFloat32(o, x, true) },
  float64: { descr: '<f8', size: 8, write: (v, o, x) => v.setFloat64(o, x, true) },
  int32: { descr: '<i4', size: 4, write: (v, o, x) => v.setInt32(o, x, true) },
  int64: { descr: '<i8', size: 8, write: (v, o, x) => v.setBigInt64(o, BigInt(x), true) },
  uint8: { descr: '|u1', size: 1, write: (v, o, x) => v.setUint8(o, x) },
};

export type NpyWriteType = keyof typeof WRITERS;

/** Encodes values (C order) as a version 1.0 .npy file. */
export function encodeNpy(values: ArrayLike<number>, shape: number[], dtype: NpyWriteType = 'float32'): Uint8Array {
  const spec = WRITERS[dtype]!;
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${spec.descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // The data starts on a multiple of 64 bytes; the header ends with a newline.
  const padding = 64 - ((10 + header.length + 1) % 64);
  header += ' '.repeat(padding % 64) + '\n';
  const out = new Uint8Array(10 + header.length + values.length * spec.size);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  out.set(new TextEncoder().encode(header), 10);
  for (let k = 0; k < values.length; k++) spec.write(view, 10 + header.length + k * spec.size, values[k]!);
  return out;
}
