/**
 * The layering of docs/architecture.md holds: no source file imports from a layer below its own (the order
 * of that page), and no source file is over 450 lines.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const SRC = join(import.meta.dirname, '..', 'src');
/** The layers, top (imported by all below) to bottom; the benchmarks sit beside the command line. */
const ORDER = ['io', 'loss', 'engine', 'data', 'models', 'training', 'analysis', 'experiments', 'report', 'cli'];

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sources(path) : name.endsWith('.ts') ? [path] : [];
  });
}

describe('architecture', () => {
  const files = sources(SRC);

  it('no import runs from a layer to one below it', () => {
    const upward: string[] = [];
    for (const file of files) {
      const layer = relative(SRC, file).split('/')[0]!;
      const rank = ORDER.indexOf(layer);
      if (rank < 0) continue;
      for (const match of readFileSync(file, 'utf8').matchAll(/from '(?:\.\.\/)+([a-z-]+)\//g)) {
        const other = ORDER.indexOf(match[1]!);
        if (other > rank) upward.push(`${relative(SRC, file)} imports ${match[1]}`);
      }
    }
    expect(upward).toEqual([]);
  });

  it('no source file is over 450 lines', () => {
    const long = files
      .map((f) => ({ file: relative(SRC, f), lines: readFileSync(f, 'utf8').split('\n').length - 1 }))
      .filter((f) => f.lines > 450);
    expect(long).toEqual([]);
  });
});
