/**
 * `npm run bench:loss`:
 * 1. forward + backward time of snnl's closed-form gradient next to autodiff through the naive formula,
 *    in the same run on the same backend, for b in {256, 1024} and d in {500, 3136};
 * 2. measuring at scale (what `snnl measure` does with a whole data set's embeddings): the loss without
 *    gradient of b = 16,384 and 65,536 points, d = 128, 10 Gaussian classes, at T = 10 and at the optimal
 *    temperature, against PyTorch computing the same loss blocked the same way (each block's distances
 *    once for all its temperatures). Each case runs in its own process, so its peak memory is its own.
 *    PyTorch's optimal-temperature row is the search's 64-point grid alone (a lower bound of a search).
 *
 * Options (environment): SNNL_BACKEND picks the backend (default: the fastest available);
 * SNNL_BENCH_REPEATS the timed repetitions per case (default 5; the median is reported);
 * SNNL_BENCH_SCALE=0 skips part 2, SNNL_BENCH_SCALE=only runs part 2 alone.
 */
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, useBackend } from '../engine/backend.js';
import { snnl } from '../loss/snnl.js';
import { snnlNaive } from '../loss/naive.js';
import type { SnnlOptions } from '../loss/options.js';
import { formatTable } from '../format.js';
import { defaultBlockSize } from '../loss/options.js';
import { snnlAtTemperatures } from '../loss/sweep.js';
import { optimalTemperature } from '../loss/temperature.js';
import { INSTALL_TORCH, runTorchCase, torchAvailable } from './torch.js';

type LossFn = (x: tf.Tensor, y: tf.Tensor1D, o: SnnlOptions) => tf.Tensor;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Milliseconds for one forward + backward pass, the median of `repeats` after one warm-up. */
function time(loss: LossFn, x: tf.Tensor2D, y: tf.Tensor1D, options: SnnlOptions, repeats: number): number {
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.valueAndGrads((f: tf.Tensor) => loss(f, y, options) as tf.Scalar)([x]);
      value.dataSync();
      grads[0]!.dataSync();
    });
  step();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const start = performance.now();
    step();
    times.push(performance.now() - start);
  }
  return median(times);
}

interface ScaleCase {
  b: number;
  /** A temperature, or 'optimal'. */
  temperature: number | 'optimal';
}

const SCALE_CASES: ScaleCase[] = [
  { b: 16384, temperature: 10 },
  { b: 65536, temperature: 10 },
  { b: 16384, temperature: 'optimal' },
];
const SCALE_FEATURES = 128;

/** b points, 10 classes around means drawn N(0, 0.5^2), unit noise (bench/torch_bench.py's gaussian_classes). */
function gaussianClasses(b: number, d: number): { x: tf.Tensor2D; y: Int32Array } {
  const y = Int32Array.from({ length: b }, (_, i) => i % 10);
  const x = tf.tidy(() => {
    const means = tf.mul(tf.randomNormal([10, d], 0, 1, 'float32', 3), 0.5);
    return tf.add(
      tf.gather(means, tf.tensor1d(y, 'int32')),
      tf.randomNormal([b, d], 0, 1, 'float32', 4),
    ) as tf.Tensor2D;
  });
  return { x, y };
}

/** One scale case in this process (a child of main): seconds and peak resident memory as JSON. */
async function scaleCase(c: ScaleCase): Promise<void> {
  await useBackend();
  const { x, y } = gaussianClasses(c.b, SCALE_FEATURES);
  const start = performance.now();
  const loss =
    c.temperature === 'optimal'
      ? optimalTemperature(x, y, { checkFinite: false }).loss
      : snnlAtTemperatures(x, y, [c.temperature], { checkFinite: false }).losses[0]!;
  const seconds = (performance.now() - start) / 1000;
  console.log(JSON.stringify({ seconds, peakMb: process.resourceUsage().maxRSS / 1024, loss }));
}

function scaleTable(backend: string): void {
  const threads = availableParallelism();
  const withTorch = torchAvailable();
  console.log(`\nMeasuring at scale: d = ${SCALE_FEATURES}, 10 Gaussian classes, stable formula, squared Euclidean`);
  if (!withTorch) console.log(`PyTorch is not installed: measuring snnl alone. For the comparison: ${INSTALL_TORCH}`);
  const rows = [
    ['b', 'T', 'rows per block', `snnl s (${backend})`, 'snnl peak MB', 'PyTorch s', 'PyTorch peak MB', 'PyTorch/snnl'],
  ];
  for (const c of SCALE_CASES) {
    const child = spawnSync(process.execPath, [import.meta.filename, '--scale-case', JSON.stringify(c)], {
      encoding: 'utf8',
      env: process.env,
    });
    if (child.status !== 0) throw new Error(`scale case b=${c.b} failed: ${child.stderr.trim().split('\n').at(-1)}`);
    const ours = JSON.parse(child.stdout.trim().split('\n').at(-1)!) as { seconds: number; peakMb: number };
    const rowsPerBlock = defaultBlockSize(c.b);
    let theirs: { seconds: number; peak_mb: number } | undefined;
    if (withTorch) {
      // The optimal temperature: PyTorch evaluates the search's 64-point grid only.
      const temperatures =
        c.temperature === 'optimal'
          ? Array.from({ length: 64 }, (_, k) => Math.exp(-2 + (10 * k) / 63))
          : [c.temperature];
      theirs = runTorchCase(
        { kind: 'snnl-scale', batch: c.b, features: SCALE_FEATURES, temperatures, rows: rowsPerBlock },
        threads,
      );
    }
    rows.push([
      String(c.b),
      c.temperature === 'optimal' ? 'optimal (PyTorch: its 64-point grid)' : String(c.temperature),
      String(rowsPerBlock),
      ours.seconds.toFixed(1),
      ours.peakMb.toFixed(0),
      theirs ? theirs.seconds.toFixed(1) : '-',
      theirs ? theirs.peak_mb.toFixed(0) : '-',
      theirs ? `${(theirs.seconds / ours.seconds).toFixed(2)}x` : '-',
    ]);
    console.log(rows.at(-1)!.join('\t'));
  }
  console.log('\n' + formatTable(rows));
}

async function main(): Promise<void> {
  if (process.argv[2] === '--scale-case') return scaleCase(JSON.parse(process.argv[3]!) as ScaleCase);
  await useBackend();
  if (process.env['SNNL_BENCH_SCALE'] === 'only') return scaleTable(describeBackend());
  const backend = describeBackend();
  const repeats = Number(process.env['SNNL_BENCH_REPEATS'] ?? 5);
  console.log(`snnl loss benchmark: backend ${backend}, median of ${repeats} forward+backward passes\n`);
  const rows: string[][] = [['b', 'd', 'preset', 'closed form ms', 'naive autodiff ms', 'speed-up']];
  for (const b of [256, 1024]) {
    for (const d of [500, 3136]) {
      for (const preset of ['stable', 'cleverhans'] as const) {
        const x = tf.randomNormal([b, d], 0, 1, 'float32', 1) as tf.Tensor2D;
        const y = tf.randomUniform([b], 0, 10, 'int32', 2) as tf.Tensor1D;
        // T of the order of the distances (about 2d here), so that exp(-D / T) is neither 0 nor 1.
        const options: SnnlOptions = { preset, temperature: d };
        // Alternate the two so that drift in machine speed affects both alike.
        const fused = time(snnl, x, y, options, repeats);
        const naive = time(snnlNaive, x, y, options, repeats);
        rows.push([String(b), String(d), preset, fused.toFixed(1), naive.toFixed(1), `${(naive / fused).toFixed(2)}x`]);
        tf.dispose([x, y]);
        console.log(rows.at(-1)!.join('\t'));
      }
    }
  }
  console.log('\n' + formatTable(rows));
  if (process.env['SNNL_BENCH_SCALE'] !== '0') scaleTable(backend);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
