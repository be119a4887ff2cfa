import { describe, expect, it } from 'vitest';
import { inputErrorMessage as message } from './helpers.js';
import { encodeNpy, parseNpy } from '../src/io/npy.js';
import { parseCsv, parseJson } from '../src/io/text.js';

/** A .npy file written by hand, byte for byte, the way numpy.save lays it out. */
function npy(descr: string, shape: string, data: Uint8Array, fortran = false, version = 1): Uint8Array {
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${shape}, }`;
  const prefix = version === 1 ? 10 : 12;
  header += ' '.repeat(63 - ((prefix + header.length) % 64)) + '\n';
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(new TextEncoder().encode(header), prefix);
  out.set(data, prefix + header.length);
  return out;
}

function bytesOf(write: (view: DataView) => void, length: number): Uint8Array {
  const buffer = new Uint8Array(length);
  write(new DataView(buffer.buffer));
  return buffer;
}

describe('.npy', () => {
  it('round-trips float32, float64, int32, int64 and uint8 arrays', () => {
    const values = [1.5, -2, 3, 0, 7, 255];
    for (const dtype of ['float32', 'float64', 'int32', 'int64', 'uint8'] as const) {
      const v = dtype === 'uint8' || dtype.startsWith('int') ? values.map((x) => Math.abs(Math.round(x))) : values;
      const parsed = parseNpy(encodeNpy(v, [2, 3], dtype), 'a.npy');
      expect(parsed.shape).toEqual([2, 3]);
      expect(parsed.dtype).toBe(dtype);
      expect(Array.from(parsed.values)).toEqual(v);
    }
  });

  it('reads any integer width, booleans, float16, big endian and format versions 2 and 3', () => {
    const i2 = bytesOf((v) => [-3, 7].forEach((x, k) => v.setInt16(2 * k, x, true)), 4);
    expect(Array.from(parseNpy(npy('<i2', '(2,)', i2), 'f').values)).toEqual([-3, 7]);
    const u4 = bytesOf((v) => [4000000000, 1].forEach((x, k) => v.setUint32(4 * k, x, true)), 8);
    expect(Array.from(parseNpy(npy('<u4', '(2,)', u4), 'f').values)).toEqual([4000000000, 1]);
    const i1 = new Uint8Array([0xff, 0x05]);
    expect(Array.from(parseNpy(npy('|i1', '(2,)', i1), 'f').values)).toEqual([-1, 5]);
    expect(Array.from(parseNpy(npy('|b1', '(3,)', new Uint8Array([1, 0, 1])), 'f').values)).toEqual([1, 0, 1]);
    const f2 = bytesOf((v) => [0x3c00, 0xc000, 0x3555].forEach((x, k) => v.setUint16(2 * k, x, true)), 6);
    expect(Array.from(parseNpy(npy('<f2', '(3,)', f2), 'f').values)).toEqual([1, -2, 0.333251953125]);
    const big = bytesOf((v) => [1.25, -8].forEach((x, k) => v.setFloat64(8 * k, x, false)), 16);
    expect(Array.from(parseNpy(npy('>f8', '(2,)', big), 'f').values)).toEqual([1.25, -8]);
    const f4 = bytesOf((v) => [1, 2].forEach((x, k) => v.setFloat32(4 * k, x, true)), 8);
    expect(Array.from(parseNpy(npy('<f4', '(2,)', f4, false, 2), 'f').values)).toEqual([1, 2]);
    expect(Array.from(parseNpy(npy('<f4', '(2,)', f4, false, 3), 'f').values)).toEqual([1, 2]);
  });

  it('turns Fortran order into C order', () => {
    // The 2 x 3 matrix [[1, 2, 3], [4, 5, 6]] stored column by column.
    const data = bytesOf((v) => [1, 4, 2, 5, 3, 6].forEach((x, k) => v.setFloat64(8 * k, x, true)), 48);
    const parsed = parseNpy(npy('<f8', '(2, 3)', data, true), 'f');
    expect(Array.from(parsed.values)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('rejects malformed files with the file name and the problem', () => {
    const good = encodeNpy([1, 2, 3, 4], [2, 2], 'float32');
    expect(message(() => parseNpy(new TextEncoder().encode('1,2,3\n'), 'e.npy'))).toBe(
      'e.npy: not a NumPy .npy file (it does not start with the \\x93NUMPY magic string)',
    );
    expect(message(() => parseNpy(good.subarray(0, good.length - 3), 'e.npy'))).toMatch(
      /e.npy: truncated: shape \(2, 2\) of float32 needs 16 bytes of data, the file has 13/,
    );
    expect(message(() => parseNpy(good.subarray(0, 40), 'e.npy'))).toMatch(/truncated .npy header/);
    expect(message(() => parseNpy(npy('<c16', '(2,)', new Uint8Array(32)), 'e.npy'))).toMatch(
      /unsupported .npy element type '<c16'/,
    );
    expect(message(() => parseNpy(npy('|O', '(2,)', new Uint8Array(16)), 'e.npy'))).toMatch(/unsupported/);
    const noShape = npy('<f4', '(2,)', new Uint8Array(8));
    const text = new TextDecoder('latin1').decode(noShape).replace("'shape'", "'shoop'");
    expect(
      message(() =>
        parseNpy(
          Uint8Array.from(text, (c) => c.charCodeAt(0)),
          'e.npy',
        ),
      ),
    ).toMatch(/malformed .npy header/);
    const wrongVersion = good.slice();
    wrongVersion[6] = 9;
    expect(message(() => parseNpy(wrongVersion, 'e.npy'))).toMatch(/unsupported .npy format version 9/);
  });
});

describe('CSV and JSON', () => {
  it('reads CSV with or without a header, with any common separator', () => {
    const parsed = parseCsv('a,b,c\n1,2,3\n4,5,6\n', 'f.csv');
    expect(parsed.shape).toEqual([2, 3]);
    expect(Array.from(parsed.values)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(Array.from(parseCsv('1\t2\r\n3\t4\r\n\n', 'f.tsv').values)).toEqual([1, 2, 3, 4]);
    expect(parseCsv('label\n3\n1\n2\n', 'l.csv').shape).toEqual([3]);
    expect(Array.from(parseCsv('nan; inf\n-inf; 1e3\n', 'f.csv').values)).toEqual([NaN, Infinity, -Infinity, 1000]);
  });

  it('rejects ragged or non-numeric CSV, naming the line', () => {
    expect(message(() => parseCsv('1,2\n3\n', 'f.csv'))).toBe(
      'f.csv: line 2 has 1 values, expected 2 like the first row',
    );
    expect(message(() => parseCsv('1,2\n3,x\n', 'f.csv'))).toBe("f.csv: line 2, column 2: 'x' is not a number");
    expect(message(() => parseCsv('\n\n', 'f.csv'))).toMatch(/no rows of numbers/);
  });

  it('reads nested JSON arrays of any rank, or {"data": ...}', () => {
    const parsed = parseJson('[[[1,2],[3,4]],[[5,6],[7,8]]]', 'f.json');
    expect(parsed.shape).toEqual([2, 2, 2]);
    expect(Array.from(parsed.values)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(parseJson('{"data": [1, 2, 3]}', 'f.json').shape).toEqual([3]);
  });

  it('rejects invalid, ragged or non-numeric JSON', () => {
    expect(message(() => parseJson('[1, 2', 'f.json'))).toMatch(/^f.json: not valid JSON/);
    expect(message(() => parseJson('[[1, 2], [3]]', 'f.json'))).toMatch(
      /element \[1\] should be an array of 2 entries/,
    );
    expect(message(() => parseJson('[[1, "a"]]', 'f.json'))).toMatch(/element \[0\]\[1\] is "a", expected a number/);
    expect(message(() => parseJson('{"x": 1}', 'f.json'))).toMatch(/expected a JSON array/);
    // Deep nesting is refused before the recursive walk, not a stack overflow.
    expect(message(() => parseJson('['.repeat(5000) + '1' + ']'.repeat(5000), 'f.json'))).toBe(
      'f.json: arrays nested more than 32 deep are not supported (features are [rows, ...])',
    );
    expect(parseJson('['.repeat(32) + '1' + ']'.repeat(32), 'f.json').shape).toHaveLength(32);
  });
});
