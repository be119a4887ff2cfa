/**
 * `npm run bench:loss`: forward + backward time of snnl's closed-form gradient next to autodiff through
 * the naive formula, in the same run on the same backend, for b in {256, 1024} and d in {500, 3136}.
 *
 * Options (environment): SNNL_BACKEND picks the backend (default: the fastest available);
 * SNNL_BENCH_REPEATS the timed repetitions per case (default 5; the median is reported).
 */
import * as tf from '@tensorflow/tfjs-core';
import { describeBackend, useBackend } from '../engine/backend.js';
import { snnl } from '../loss/snnl.js';
import { snnlNaive } from '../loss/naive.js';
import type { SnnlOptions } from '../loss/options.js';
import { formatTable } from '../format.js';

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

async function main(): Promise<void> {
  await useBackend();
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
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
