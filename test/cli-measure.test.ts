import { spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { retrievalMetrics } from '../src/analysis/retrieval.js';
import { encodeNpy } from '../src/io/npy.js';
import { loadAddon } from '../src/engine/native/addon.js';
import { needs, onBackend } from './helpers.js';
import { normalMatrix, oracleSnnl, relativeError, seeded, type OracleDistance, type OraclePreset } from './oracle.js';

const CLI = join(import.meta.dirname, '..', 'dist', 'cli', 'main.js');

function snnlCli(...args: string[]) {
  const run = spawnSync(process.execPath, [CLI, ...args], {
    encoding: 'utf8',
    env: { ...process.env, SNNL_BACKEND: 'wasm' },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

let dir: string;
const b = 60;
const x = normalMatrix(b, 7, seeded(31));
// Classes 0..3, and one example of class 9 with no same-class partner.
const y = Array.from({ length: b }, (_, i) => (i === b - 1 ? 9 : i % 4));

beforeAll(async () => {
  await onBackend('cpu'); // for retrievalMetrics, the expected retrieval figures
  dir = mkdtempSync(join(tmpdir(), 'snnl-measure-'));
  writeFileSync(join(dir, 'x.npy'), encodeNpy(x.flat(), [b, 7], 'float64'));
  writeFileSync(join(dir, 'y.npy'), encodeNpy(y, [b], 'int64'));
  writeFileSync(join(dir, 'x32.npy'), encodeNpy(x.flat(), [b, 7], 'float32'));
  writeFileSync(join(dir, 'y8.npy'), encodeNpy(y, [b], 'uint8'));
  writeFileSync(join(dir, 'x.csv'), 'f1,f2,f3,f4,f5,f6,f7\n' + x.map((r) => r.join(',')).join('\n'));
  writeFileSync(join(dir, 'y.json'), JSON.stringify(y));
});

describe('snnl measure', () => {
  const cases: Array<[OraclePreset, OracleDistance]> = [
    ['stable', 'squared-euclidean'],
    ['stable', 'euclidean'],
    ['stable', 'cosine'],
    ['cleverhans', 'squared-euclidean'],
    ['cleverhans', 'cosine'],
    ['pt-snnl', 'cosine'],
  ];
  it.each(cases)('--preset %s --distance %s matches the float64 oracle', (preset, distance) => {
    const run = snnlCli(
      'measure',
      join(dir, 'x.npy'),
      join(dir, 'y.npy'),
      '--preset',
      preset,
      '--distance',
      distance,
      '--temperature',
      '3',
      '--json',
    );
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout);
    const expected = oracleSnnl(x, y, 3, distance, preset);
    expect(relativeError(result.loss, expected.loss)).toBeLessThan(1e-4);
    expect(result.temperature).toBe(3);
    expect(result.rowsWithoutPartner).toBe(1);
    expect(result).toMatchObject({ examples: b, features: 7, classes: 5, preset, distance, backend: 'wasm' });
    // Retrieval metrics by the same distance (Euclidean ranks as squared Euclidean does).
    const retrieval = retrievalMetrics({ rows: b, dim: 7, values: Float32Array.from(x.flat()) }, y, distance);
    expect(result.retrieval.precisionAt1).toBeCloseTo(retrieval.precisionAt1, 12);
    expect(result.retrieval.mapAtR).toBeCloseTo(retrieval.mapAtR, 12);
  });

  it('prints precision@1 and MAP@R, and leaves them out with --no-retrieval', () => {
    const run = snnlCli('measure', join(dir, 'x.npy'), join(dir, 'y.npy'));
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/precision@1 +\d/);
    expect(run.stdout).toMatch(/MAP@R +\d/);
    const without = snnlCli('measure', join(dir, 'x.npy'), join(dir, 'y.npy'), '--no-retrieval', '--json');
    expect(JSON.parse(without.stdout).retrieval).toBeNull();
  });

  /** The minimum of the float64 oracle over a dense grid of log T from e^-6 to e^12. */
  const gridMinimum = (points: number[][]) => {
    let best = { temperature: NaN, loss: Infinity };
    for (let u = -6; u <= 12; u += 0.002) {
      const loss = oracleSnnl(points, y, Math.exp(u), 'squared-euclidean', 'stable').loss;
      if (loss < best.loss) best = { temperature: Math.exp(u), loss };
    }
    return best;
  };

  it('finds the optimal temperature within one percent of a dense grid search', () => {
    // Classes pulled apart a little: the loss has its minimum at a finite temperature.
    const clustered = x.map((row, i) => row.map((v, k) => v + (k === y[i]! % 7 ? 1.2 : 0)));
    writeFileSync(join(dir, 'xc.npy'), encodeNpy(clustered.flat(), [b, 7], 'float64'));
    const run = snnlCli('measure', join(dir, 'xc.npy'), join(dir, 'y.npy'), '--temperature', 'optimal', '--json');
    expect(run.status).toBe(0);
    const result = JSON.parse(run.stdout);
    const best = gridMinimum(clustered);
    expect(best.temperature).toBeLessThan(Math.exp(11));
    expect(relativeError(result.optimal.temperature, best.temperature)).toBeLessThan(0.01);
    expect(relativeError(result.loss, best.loss)).toBeLessThan(1e-4);
    expect(result.optimal.atBoundary).toBe(false);
  });

  it('says so when the loss keeps falling as T grows (fully entangled random data)', () => {
    const run = snnlCli('measure', join(dir, 'x.npy'), join(dir, 'y.npy'), '--temperature', 'optimal', '--json');
    const result = JSON.parse(run.stdout);
    // The infimum is at T -> infinity: the loss found is the grid's minimum to float32 precision.
    expect(relativeError(result.loss, gridMinimum(x).loss)).toBeLessThan(1e-4);
    expect(result.optimal.atBoundary).toBe(true);
    expect(snnlCli('measure', join(dir, 'x.npy'), join(dir, 'y.npy'), '--temperature', 'optimal').stdout).toMatch(
      /minimum lies at the edge of the range searched/,
    );
  });

  it('reads float32 and uint8 .npy, CSV with a header and JSON alike', () => {
    const loss = (e: string, l: string) =>
      JSON.parse(snnlCli('measure', join(dir, e), join(dir, l), '--json').stdout).loss;
    const reference = loss('x.npy', 'y.npy');
    expect(loss('x32.npy', 'y8.npy')).toBeCloseTo(reference, 5);
    expect(loss('x.csv', 'y.json')).toBeCloseTo(reference, 5);
  });

  it('prints a readable report by default', () => {
    const run = snnlCli('measure', join(dir, 'x.npy'), join(dir, 'y.npy'));
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/SNNL of .*x\.npy \(60 examples x 7 features, 5 classes\)/);
    expect(run.stdout).toMatch(/loss\s+\d/);
    expect(run.stdout).toMatch(/temperature\s+1\.0/);
    expect(run.stdout).toMatch(/rows without a same-class partner: 1 \(left out of the mean\)/);
  });
});

describe('snnl measure with bad input exits 2 with one clear line', () => {
  const bad = (name: string, bytes: Uint8Array | string) => {
    writeFileSync(join(dir, name), bytes);
    return join(dir, name);
  };
  const cases: Array<[string, () => string[], RegExp]> = [
    [
      'a truncated .npy',
      () => [bad('t.npy', encodeNpy(x.flat(), [b, 7]).subarray(0, 300)), join(dir, 'y.npy')],
      /t\.npy: truncated/,
    ],
    ['a wrong header', () => [bad('h.npy', 'not numpy at all'), join(dir, 'y.npy')], /h\.npy: not a NumPy \.npy file/],
    [
      'a JSON array nested 5,000 deep',
      () => [bad('deep.json', '['.repeat(5000) + '1' + ']'.repeat(5000)), join(dir, 'y.npy')],
      /deep\.json: arrays nested more than 32 deep are not supported/,
    ],
    [
      'mismatched sizes',
      () => [join(dir, 'x.npy'), bad('y5.npy', encodeNpy([0, 1, 0, 1, 0], [5], 'int32'))],
      /has 5 labels but the embeddings have 60 rows/,
    ],
    [
      'one example',
      () => [bad('x1.npy', encodeNpy([1, 2], [1, 2])), bad('y1.npy', encodeNpy([0], [1], 'int32'))],
      /has 1 example; SNNL needs at least 2/,
    ],
    [
      'labels not integers',
      () => [
        join(dir, 'x.npy'),
        bad(
          'yf.npy',
          encodeNpy(
            y.map((v) => v + 0.5),
            [b],
            'float64',
          ),
        ),
      ],
      /label 0 is 0.5; labels must be whole numbers/,
    ],
    [
      'a non-finite feature',
      () => [
        bad(
          'xn.npy',
          encodeNpy(
            x.flat().map((v, k) => (k === 7 * 13 + 2 ? NaN : v)),
            [b, 7],
            'float64',
          ),
        ),
        join(dir, 'y.npy'),
      ],
      /xn\.npy: row 13 holds NaN/,
    ],
    [
      'T <= 0',
      () => [join(dir, 'x.npy'), join(dir, 'y.npy'), '--temperature', '0'],
      /--temperature: expected a number above 0 or 'optimal', got '0'/,
    ],
    [
      'T not a number',
      () => [join(dir, 'x.npy'), join(dir, 'y.npy'), '--temperature', 'hot'],
      /--temperature: expected a number above 0/,
    ],
    [
      'an unknown distance',
      () => [join(dir, 'x.npy'), join(dir, 'y.npy'), '--distance', 'l1'],
      /'l1' is invalid\. Allowed choices are squared-euclidean, euclidean, cosine/,
    ],
    [
      'an unknown preset',
      () => [join(dir, 'x.npy'), join(dir, 'y.npy'), '--preset', 'keras'],
      /Allowed choices are stable, cleverhans, pt-snnl/,
    ],
    [
      'a distance the preset lacks',
      () => [join(dir, 'x.npy'), join(dir, 'y.npy'), '--preset', 'pt-snnl', '--distance', 'euclidean'],
      /pt-snnl preset supports cosine distance only/,
    ],
    ['a missing file', () => [join(dir, 'nope.npy'), join(dir, 'y.npy')], /nope\.npy: cannot read it: no such file/],
    [
      'a directory',
      () => [(mkdirSync(join(dir, 'd.npy'), { recursive: true }), join(dir, 'd.npy')), join(dir, 'y.npy')],
      /d\.npy: cannot read it: is a directory/,
    ],
    ['an unknown file type', () => [join(dir, 'x.parquet'), join(dir, 'y.npy')], /unknown file type '\.parquet'/],
    [
      'labels of two columns',
      () => [join(dir, 'x.npy'), bad('y2.csv', '0,1\n1,0\n')],
      /expected one label per example, got shape \(2, 2\)/,
    ],
    [
      'embeddings of rank 1',
      () => [bad('x1d.json', '[1, 2, 3]'), bad('y3.json', '[0, 0, 1]')],
      /expected embeddings of shape \(examples, features\.\.\.\)/,
    ],
    [
      'a bad block size',
      () => [join(dir, 'x.npy'), join(dir, 'y.npy'), '--block-size', '0'],
      /--block-size: expected a whole number above 0/,
    ],
    ['a missing argument', () => [join(dir, 'x.npy')], /missing required argument 'labels'/],
    [
      'garbage appended to a labels .csv (control and non-ASCII characters shown escaped, on one line)',
      () => [join(dir, 'x.npy'), bad('yg.csv', y.join('\n') + '\nV\u000b*L\u2028\u0000x\n')],
      /yg\.csv: line 61, column 1: 'V\\u000b\*L\\u2028\\u0000x' is not a number$/,
    ],
    [
      // The same check and words as snnl() (src/loss/options.ts): no NaN or null printed with exit 0.
      'a value past the float32 overflow bound (1e25 at 7 features)',
      () => [
        bad(
          'xbig.npy',
          encodeNpy(
            x.flat().map((v, k) => (k === 40 ? 1e25 : v)),
            [b, 7],
            'float32',
          ),
        ),
        join(dir, 'y.npy'),
      ],
      /xbig\.npy: values reach 1\.00e\+25: squared distances between rows would overflow float32 at 7 features \(keep \|x\| below 1\.74e\+18\)/,
    ],
  ];
  it.each(cases)('%s', (_name, args, pattern) => {
    const run = snnlCli('measure', ...args());
    expect(run.status).toBe(2);
    expect(run.stdout).toBe('');
    // One line (commander adds its usage hint to its own errors).
    expect(
      run.stderr
        .trim()
        .split('\n')
        .filter((l) => !l.startsWith('(run with --help')),
    ).toHaveLength(1);
    expect(run.stderr.trim()).toMatch(pattern);
    expect(run.stderr).not.toMatch(/\n\s+at /);
  });

  it('refuses what snnl() refuses with the same words', async () => {
    const { snnl } = await import('../src/loss/snnl.js');
    const tf = await import('@tensorflow/tfjs-core');
    const { onBackend } = await import('./helpers.js');
    await onBackend('cpu');
    const big = x.flat().map((v, k) => (k === 40 ? 1e25 : v));
    let thrown = '';
    try {
      snnl(tf.tensor2d(big, [b, 7]), y);
    } catch (error) {
      thrown = (error as Error).message;
    }
    const run = snnlCli('measure', bad('xbig2.npy', encodeNpy(big, [b, 7], 'float32')), join(dir, 'y.npy'));
    expect(thrown).toMatch(/^features: values reach/);
    expect(run.stderr.trim()).toBe(`snnl: ${join(dir, 'xbig2.npy')}: ${thrown.slice('features: '.length)}`);
  });

  it('an unknown backend in SNNL_BACKEND', () => {
    const run = spawnSync(process.execPath, [CLI, 'measure', join(dir, 'x.npy'), join(dir, 'y.npy')], {
      encoding: 'utf8',
      env: { ...process.env, SNNL_BACKEND: 'tpu' },
    });
    expect(run.status).toBe(2);
    expect(run.stderr).toMatch(/Allowed choices are auto, native, wasm, cpu/);
  });
});

describe('snnl measure at scale, on native', () => {
  const native = needs('addon' in loadAddon(), 'the native addon is not built (npm run build:native)');
  native(
    'blocks by default past 8,192 rows, with the same result as small blocks',
    () => {
      // 9,000 rows: b x b (81M entries) is past the default 64M, so the rows go in blocks of 7,456.
      const rows = 9000;
      const random = seeded(41);
      const labels = Array.from({ length: rows }, (_, i) => i % 10);
      const features = Array.from(
        { length: rows * 4 },
        (_, k) => random() + (k % 4 === labels[Math.floor(k / 4)]! % 4 ? 1 : 0),
      );
      writeFileSync(join(dir, 'big-x.npy'), encodeNpy(features, [rows, 4], 'float32'));
      writeFileSync(join(dir, 'big-y.npy'), encodeNpy(labels, [rows], 'int32'));
      const measureWith = (...flags: string[]) => {
        const run = spawnSync(
          process.execPath,
          [CLI, 'measure', join(dir, 'big-x.npy'), join(dir, 'big-y.npy'), '--json', '--backend', 'native', ...flags],
          { encoding: 'utf8' },
        );
        expect(run.stderr).toBe('');
        expect(run.status).toBe(0);
        return JSON.parse(run.stdout) as { loss: number; temperature: number };
      };
      // One temperature (the search over blocks is tested in test/sweep.test.ts): one pass each.
      const whole = measureWith('--temperature', '0.5');
      const blocked = measureWith('--temperature', '0.5', '--block-size', '700');
      expect(relativeError(blocked.loss, whole.loss)).toBeLessThan(1e-5);
      expect(whole.loss).toBeGreaterThan(0);
      expect(Number.isFinite(whole.loss)).toBe(true);
    },
    120_000,
  );
});
