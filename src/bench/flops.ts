/**
 * What the benchmark's cases cost in arithmetic, and what the host can do: the floating-point operations of
 * one image's (or example's) step, the processor's model and instruction-set level, and the GEMM rate of a
 * backend measured in the same run. A case's floor is the GEMM rate over its operations per image: the
 * images per second it would reach if every operation ran at the speed of one large matrix product.
 */
import { cpus } from 'node:os';
import { existsSync, readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';

const product = (values: Array<number | null>) => values.reduce<number>((a, v) => a * (v ?? 1), 1);

/** Multiply-adds x 2 of one image through a model's Dense and convolution layers (forward only). */
export function forwardFlops(model: tf.LayersModel): number {
  let flops = 0;
  for (const layer of model.layers) {
    const name = layer.getClassName();
    const shapeOf = (t: tf.SymbolicTensor | tf.SymbolicTensor[]) => (Array.isArray(t) ? t[0]! : t).shape;
    const input = shapeOf(layer.input);
    const output = shapeOf(layer.output);
    const config = layer.getConfig() as { units?: number; filters?: number; kernelSize?: number | number[] };
    const kernel = Array.isArray(config.kernelSize) ? product(config.kernelSize) : (config.kernelSize ?? 1) ** 2;
    if (name === 'Dense') flops += 2 * product(input.slice(1)) * config.units!;
    else if (name === 'Conv2D') flops += 2 * product(output.slice(1, 3)) * kernel * input.at(-1)! * config.filters!;
    else if (name === 'Conv2DTranspose')
      flops += 2 * product(input.slice(1, 3)) * kernel * input.at(-1)! * config.filters!;
  }
  return flops;
}

/**
 * One training step per image: the forward products and the two of the backward pass (3 x forward), and
 * for each SNNL layer of width d in a batch of b the closed form's two b x b x d products (4 b d per image).
 */
export function trainingFlops(model: tf.LayersModel, snnlWidths: number[], batch: number): number {
  return 3 * forwardFlops(model) + snnlWidths.reduce((a, d) => a + 4 * batch * d, 0);
}

export interface Processor {
  model: string;
  /** The widest vector instruction set the kernel reports: AVX-512, AVX2, AVX, SSE4.2, NEON, or unknown. */
  isa: string;
  cores: number;
}

export function processor(): Processor {
  const all = cpus();
  let isa = 'unknown';
  let model = all[0]?.model.trim() ?? 'unknown';
  if (existsSync('/proc/cpuinfo')) {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    // Family and model numbers tell processor generations apart where the name does not (a VM's "AMD EPYC").
    const family = /^cpu family\s*:\s*(\d+)/m.exec(info)?.[1];
    const number = /^model\s*:\s*(\d+)/m.exec(info)?.[1];
    if (family && number) model += ` (family ${family}, model ${number})`;
    const flags = /^(flags|Features)\s*:\s*(.*)$/m.exec(info)?.[2]?.split(/\s+/) ?? [];
    const has = (f: string) => flags.includes(f);
    isa = has('avx512f')
      ? 'AVX-512'
      : has('avx2')
        ? 'AVX2'
        : has('avx')
          ? 'AVX'
          : has('sse4_2')
            ? 'SSE4.2'
            : has('asimd')
              ? 'NEON'
              : 'unknown';
  }
  return { model, isa, cores: all.length };
}

/** GFLOP/s of an n x n x n float32 matrix product on the backend in use (median of `repeats` after a warm-up). */
export function gemmRate(n = 1024, repeats = 5): number {
  const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
  const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
  const once = () => {
    const start = performance.now();
    const c = tf.matMul(a, b);
    c.dataSync();
    c.dispose();
    return (performance.now() - start) / 1000;
  };
  once();
  const times = Array.from({ length: repeats }, once).sort((x, y) => x - y);
  tf.dispose([a, b]);
  return (2 * n ** 3) / times[Math.floor(repeats / 2)]! / 1e9;
}
