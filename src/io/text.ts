/**
 * Arrays in text files: CSV (one example per line, an optional header line) and JSON (nested arrays
 * of numbers, rectangular).
 */
import { InputError } from '../errors.js';
import type { NumericArray } from './npy.js';

/** A cell as a message shows it: on one line, printable ASCII (others as \\uXXXX), at most 24 characters. */
export function quoteCell(cell: string): string {
  const short = cell.length > 24 ? `${cell.slice(0, 24)}...` : cell;
  const printable = short.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `'${printable}'`;
}

/** Decodes CSV text: commas, semicolons, tabs or spaces between numbers; a first line of names is skipped. */
export function parseCsv(text: string, name: string): NumericArray {
  const lines = text.split(/\r?\n/).map((line, k) => ({ line: line.trim(), number: k + 1 }));
  const filled = lines.filter(({ line }) => line.length > 0 && !line.startsWith('#'));
  const fields = (line: string) => line.split(/\s*[,;\t ]\s*/).filter((f) => f.length > 0);
  const numeric = (f: string) => Number.isFinite(Number(f)) || /^[-+]?(nan|inf(inity)?)$/i.test(f);
  let rows = filled;
  if (rows.length > 0 && !fields(rows[0]!.line).every(numeric)) rows = rows.slice(1);
  if (rows.length === 0) throw new InputError(name, 'no rows of numbers in this CSV file');
  const width = fields(rows[0]!.line).length;
  const values = new Float64Array(rows.length * width);
  rows.forEach(({ line, number }, r) => {
    const cells = fields(line);
    if (cells.length !== width) {
      throw new InputError(name, `line ${number} has ${cells.length} values, expected ${width} like the first row`);
    }
    cells.forEach((cell, c) => {
      const v = Number(cell);
      if (Number.isNaN(v) && !/^[-+]?nan$/i.test(cell)) {
        const parsed = /^([-+]?)inf(inity)?$/i.exec(cell);
        if (!parsed) {
          throw new InputError(name, `line ${number}, column ${c + 1}: ${quoteCell(cell)} is not a number`);
        }
        values[r * width + c] = parsed[1] === '-' ? -Infinity : Infinity;
        return;
      }
      values[r * width + c] = v;
    });
  });
  const shape = width === 1 ? [rows.length] : [rows.length, width];
  return { values, shape, dtype: 'float64' };
}

/** The deepest nesting a JSON array may have (the reader walks it recursively). */
export const MAX_RANK = 32;

/** Decodes JSON: a number array of any rank (rectangular), or {"data": [...]} around one. */
export function parseJson(text: string, name: string): NumericArray {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new InputError(name, `not valid JSON (${(error as Error).message})`);
  }
  if (parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) && 'data' in parsed) {
    parsed = (parsed as { data: unknown }).data;
  }
  if (!Array.isArray(parsed)) throw new InputError(name, 'expected a JSON array of numbers (nested for rank > 1)');
  const shape: number[] = [];
  for (let level: unknown = parsed; Array.isArray(level); level = level[0]) {
    shape.push(level.length);
    if (shape.length > MAX_RANK) {
      throw new InputError(
        name,
        `arrays nested more than ${MAX_RANK} deep are not supported (features are [rows, ...])`,
      );
    }
  }
  const values = new Float64Array(shape.reduce((a, n) => a * n, 1));
  let next = 0;
  const walk = (node: unknown, depth: number, path: string) => {
    if (depth === shape.length) {
      if (typeof node !== 'number') {
        throw new InputError(name, `${path} is ${JSON.stringify(node)}, expected a number`);
      }
      values[next++] = node;
      return;
    }
    if (!Array.isArray(node) || node.length !== shape[depth]) {
      throw new InputError(
        name,
        `${path} should be an array of ${shape[depth]} entries (the array is not rectangular)`,
      );
    }
    node.forEach((child, k) => walk(child, depth + 1, `${path}[${k}]`));
  };
  walk(parsed, 0, 'element ');
  return { values, shape, dtype: 'float64' };
}
