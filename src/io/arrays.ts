/**
 * Reads an array from a file chosen by its extension: .npy, .csv (also .tsv, .txt) or .json.
 */
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { InputError } from '../errors.js';
import { parseNpy, type NumericArray } from './npy.js';
import { parseCsv, parseJson } from './text.js';

export const ARRAY_EXTENSIONS = ['.npy', '.csv', '.tsv', '.txt', '.json'];

export function readArrayFile(path: string): NumericArray {
  const extension = extname(path).toLowerCase();
  if (!ARRAY_EXTENSIONS.includes(extension)) {
    throw new InputError(path, `unknown file type '${extension}'; expected one of ${ARRAY_EXTENSIONS.join(', ')}`);
  }
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (error as Error).message;
    throw new InputError(path, `cannot read it: ${why}`);
  }
  if (extension === '.npy') return parseNpy(bytes, path);
  const text = bytes.toString('utf8');
  return extension === '.json' ? parseJson(text, path) : parseCsv(text, path);
}
