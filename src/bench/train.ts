/**
 * `npm run bench`: snnl against PyTorch on the same machine, in one run, alternating the two.
 *
 * Cases: the MLP 784-500-500-10 and the REFERENCE CNN (28x28x1 and 32x32x3) trained with SNNL on their
 * hidden layers (pt-snnl's formula, cosine, T = 100, factor -10, batch 128, Adam), and SNNL forward +
 * backward alone at b = 1024, d = 3136 (the stable formula; PyTorch by autodiff), and Deep k-NN's exact
 * search (k = 75, training rows in chunks of 4,096; PyTorch by cdist and topk), and a step of the GAN
 * study (discriminator and generator, batch 64), and the CNN 28x28x1 plain step (no SNNL; the line under the
 * table gives what SNNL costs over it). PyTorch is Debian's
 * python3-torch with OpenBLAS (OpenMP build) selected per command (the fastest BLAS measured on 2 cores);
 * where it is missing the benchmark says how to install it and measures snnl alone.
 *
 * The record and the printed table say which host gave them: its processor model and instruction-set level,
 * each side's 1024^3 GEMM rate measured in the same run, and per case its operations per image and floor
 * (src/bench/flops.ts).
 *
 * Environment: SNNL_BENCH_ROUNDS (default 3), SNNL_BENCH_OUT (default bench-results.json), SNNL_PYTHON
 * (default /usr/bin/python3, where Debian installs torch), SNNL_BENCH_BACKENDS (default: native when
 * built, and wasm), SNNL_BENCH_CASES (kinds to run: mlp, cnn, snnl, snnl-closed, knn, gan; default all).
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { describeBackend, useBackend } from '../engine/backend.js';
import { ENABLE_NATIVE, loadAddon } from '../engine/native/addon.js';
import { snnl } from '../loss/snnl.js';
import { nearestNeighbors } from '../analysis/knn.js';
import { buildNetwork, type ModelName } from '../models/models.js';
import { trainStep } from '../training/step.js';
import { buildGan } from '../models/gan.js';
import { ganStep } from '../training/gan-step.js';
import { FusedAdamOptimizer } from '../training/optimizer.js';
import { writeAtomic } from '../io/atomic.js';
import { formatTable } from '../format.js';
import { INSTALL_TORCH, openBlasAvailable, runTorchCase, torchAvailable } from './torch.js';
import { forwardFlops, gemmRate, processor, trainingFlops } from './flops.js';

interface Case {
  name: string;
  kind: 'mlp' | 'cnn' | 'snnl' | 'snnl-closed' | 'knn' | 'gan';
  shape?: [number, number, number];
  batch: number;
  features?: number;
  /** knn: training rows searched (in chunks of KNN_CHUNK). */
  train?: number;
  steps: number;
  /** mlp, cnn: the SNNL factor (default FACTOR); 0 trains the plain network, with no SNNL term at all. */
  factor?: number;
}

const CASES: Case[] = [
  { name: 'MLP 784-500-500-10 + SNNL (2 layers)', kind: 'mlp', shape: [28, 28, 1], batch: 128, steps: 30 },
  { name: 'CNN 28x28x1 + SNNL (5 layers)', kind: 'cnn', shape: [28, 28, 1], batch: 128, steps: 8 },
  // The same step without SNNL: what SNNL on every hidden layer costs, measured in the same run.
  { name: 'CNN 28x28x1 plain step (no SNNL)', kind: 'cnn', shape: [28, 28, 1], batch: 128, steps: 8, factor: 0 },
  { name: 'CNN 32x32x3 + SNNL (5 layers)', kind: 'cnn', shape: [32, 32, 3], batch: 128, steps: 6 },
  // snnl's closed-form gradient (two products) against PyTorch's autodiff (three), then the same math on both sides.
  { name: 'SNNL fwd+bwd b=1024 d=3136 (PyTorch autodiff)', kind: 'snnl', batch: 1024, features: 3136, steps: 3 },
  { name: 'SNNL fwd+bwd b=1024 d=3136 (both closed form)', kind: 'snnl-closed', batch: 1024, features: 3136, steps: 3 },
  // The GAN study's step (src/training/gan-step.ts): images per second of batch 64, code 64.
  { name: 'GAN step (D and G), batch 64', kind: 'gan', shape: [28, 28, 1], batch: 64, features: 64, steps: 10 },
  // Deep k-NN's search: queries per second against 20,480 training rows of the reference CNN's conv2 width,
  // every distance computed, as cdist does (random rows give the pruned search nothing to rule out).
  {
    name: 'k-NN k=75, 2048 queries x 20480 rows, d=3200',
    kind: 'knn',
    batch: 2048,
    features: 3200,
    train: 20480,
    steps: 1,
  },
];
const KNN_K = 75;
const KNN_CHUNK = 4096;

const FACTOR = -10;
const TEMPERATURE = 100;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

/** Images (or examples) per second of `steps` steps after one warm-up. */
function timeSteps(step: () => void, batch: number, steps: number): number {
  step();
  const start = performance.now();
  for (let s = 0; s < steps; s++) step();
  return (batch * steps) / ((performance.now() - start) / 1000);
}

function knnSide(c: Case): () => number {
  const random = (rows: number) => ({
    rows,
    dim: c.features!,
    values: Float32Array.from({ length: rows * c.features! }, () => Math.random()),
  });
  const chunks = Array.from({ length: Math.ceil(c.train! / KNN_CHUNK) }, (_, i) =>
    random(Math.min(KNN_CHUNK, c.train! - i * KNN_CHUNK)),
  );
  const queries = random(c.batch);
  return () => timeSteps(() => void nearestNeighbors(chunks, queries, { k: KNN_K, prune: false }), c.batch, c.steps);
}

function ganSide(c: Case): () => number {
  const gan = buildGan({ codeSize: c.features!, imageShape: c.shape! }, 1);
  const optimizers = { generator: new FusedAdamOptimizer(2e-4, 0.5), discriminator: new FusedAdamOptimizer(2e-4, 0.5) };
  const real = tf.randomUniform([c.batch, ...c.shape!], 0, 1, 'float32', 3);
  let seed = 0;
  return () => timeSteps(() => void ganStep(gan, optimizers, real, c.features!, [seed++, seed++]), c.batch, c.steps);
}

function snnlSide(c: Case): () => number {
  if (c.kind === 'knn') return knnSide(c);
  if (c.kind === 'gan') return ganSide(c);
  const labels = Int32Array.from({ length: c.batch }, (_, i) => (i * 7) % 10);
  if (c.kind === 'snnl' || c.kind === 'snnl-closed') {
    const x = tf.randomNormal([c.batch, c.features!], 0, 1, 'float32', 1);
    const step = () =>
      tf.tidy(() => {
        const g = tf.grad((f: tf.Tensor) => snnl(f, labels, { temperature: c.features! }))(x);
        g.dataSync();
      });
    return () => timeSteps(step, c.batch, c.steps);
  }
  const step = stepOf(c);
  return () => timeSteps(step, c.batch, c.steps);
}

/** One training step of an mlp or cnn case (a fresh network and optimizer, seed 1). */
function stepOf(c: Case): () => void {
  const labels = Int32Array.from({ length: c.batch }, (_, i) => (i * 7) % 10);
  const net = buildNetwork(c.kind as ModelName, c.shape!, 10, 1);
  const optimizer = new FusedAdamOptimizer(1e-3);
  const batch = {
    x: tf.randomNormal([c.batch, ...c.shape!], 0, 1, 'float32', 2) as tf.Tensor4D,
    y: tf.tensor1d(labels, 'int32'),
    labels,
  };
  const factor = c.factor ?? FACTOR;
  const spec = {
    classes: 10,
    factor,
    temperature: TEMPERATURE,
    layers: factor === 0 ? [] : net.hiddenLayers.map((_, index) => ({ index, weight: 1 })),
    combine: 'sum' as const,
    snnl: { preset: 'pt-snnl' as const, distance: 'cosine' as const, checkFinite: false },
    multipliers: [],
  };
  return () => void trainStep(net, optimizer, batch, spec);
}

/**
 * Floating-point operations of one image (example, query) of a case: a training step's products
 * (trainingFlops), SNNL's two b x b x d products per example, the k-NN search's distances, and for the GAN
 * step the discriminator on real and generated images with its backward pass, then the generator and
 * discriminator forward and backward for the generator's update (9 D + 4 G forward-equivalents).
 */
function flopsPerImage(c: Case): number {
  if (c.kind === 'snnl' || c.kind === 'snnl-closed') return 4 * c.batch * c.features!;
  if (c.kind === 'knn') return 2 * c.train! * c.features!;
  if (c.kind === 'gan') {
    const gan = buildGan({ codeSize: c.features!, imageShape: c.shape! }, 1);
    const flops = 9 * forwardFlops(gan.discriminator) + 4 * forwardFlops(gan.generator);
    gan.generator.dispose();
    gan.discriminator.dispose();
    return flops;
  }
  const net = buildNetwork(c.kind as ModelName, c.shape!, 10, 1);
  const widths =
    (c.factor ?? FACTOR) === 0
      ? []
      : net.model.outputs.slice(0, -1).map((o) => o.shape.slice(1).reduce<number>((a, v) => a * (v ?? 1), 1));
  const flops = trainingFlops(net.model, widths, c.batch);
  net.model.dispose();
  return flops;
}

interface TorchResult {
  images_per_second: number;
  torch: string;
}

function torchSide(c: Case, threads: number): TorchResult {
  return runTorchCase<TorchResult>(
    {
      kind: c.kind,
      shape: c.shape,
      batch: c.batch,
      features: c.features,
      steps: c.steps,
      factor: c.factor ?? FACTOR,
      temperature: c.features ?? TEMPERATURE,
      train: c.train,
      k: KNN_K,
      chunk: KNN_CHUNK,
    },
    threads,
  );
}

/** Pairs of steps in the interleaved overhead measurement (after 3 warm-up steps of each). */
const OVERHEAD_PAIRS = 48;

interface Overhead {
  /** Median over the pairs of (step with SNNL / plain step) - 1. */
  median: number;
  /** Its first and third quartiles. */
  quartiles: [number, number];
  /** Total time with SNNL over total time without, minus one. */
  ofTotals: number;
}

/**
 * What SNNL on the CNN's 5 hidden layers costs over its plain step, on the backend in use: the two steps
 * interleaved one by one on twin networks, so that drift in the machine's speed (rounds of the table above
 * moved by 15% here) falls on both alike. On this 2-core host single steps range from 55 to 130 ms (page
 * faults, the collector, neighbours), and a ratio of totals over 24 pairs read anywhere from 12% to 21% for
 * one code version; the median of the pairs' ratios, with its quartiles, is what is reported.
 */
function interleavedOverhead(): Overhead {
  const c = CASES.find((k) => k.name === 'CNN 28x28x1 + SNNL (5 layers)')!;
  const withSnnl = stepOf(c);
  const plain = stepOf({ ...c, factor: 0 });
  for (let k = 0; k < 3; k++) {
    withSnnl();
    plain();
  }
  const ratios: number[] = [];
  let a = 0;
  let p = 0;
  for (let k = 0; k < OVERHEAD_PAIRS; k++) {
    const t0 = performance.now();
    withSnnl();
    const t1 = performance.now();
    plain();
    const t2 = performance.now();
    ratios.push((t1 - t0) / (t2 - t1) - 1);
    a += t1 - t0;
    p += t2 - t1;
  }
  ratios.sort((x, y) => x - y);
  const at = (q: number) => ratios[Math.round(q * (ratios.length - 1))]!;
  return { median: at(0.5), quartiles: [at(0.25), at(0.75)], ofTotals: a / p - 1 };
}

/** The snnl backends to measure: SNNL_BENCH_BACKENDS, else native (when built) and wasm. */
function benchBackends(): string[] {
  const wanted = process.env['SNNL_BENCH_BACKENDS'];
  if (wanted !== undefined) return wanted.split(',').map((b) => b.trim());
  return 'addon' in loadAddon() ? ['native', 'wasm'] : ['wasm'];
}

async function main(): Promise<void> {
  const backends = benchBackends();
  const described: string[] = [];
  for (const b of backends) {
    await useBackend(b);
    described.push(describeBackend());
  }
  const threads = availableParallelism();
  const rounds = Number(process.env['SNNL_BENCH_ROUNDS'] ?? 3);
  const withTorch = torchAvailable();
  const blas = openBlasAvailable();
  console.log(
    `snnl benchmark: snnl on ${described.join(' and ')} against PyTorch, ${threads} threads each, median of ${rounds} alternating rounds`,
  );
  if (!('addon' in loadAddon()) && process.env['SNNL_BENCH_BACKENDS'] === undefined) {
    console.log(`The native backend is not built, so it is not measured; to enable it: ${ENABLE_NATIVE}`);
  }
  if (!withTorch) {
    console.log(`PyTorch is not installed: measuring snnl alone. For the comparison: ${INSTALL_TORCH}`);
  } else if (!blas) {
    console.log(
      `OpenBLAS's OpenMP build is missing, so PyTorch uses a slower BLAS and the ratios flatter snnl: ${INSTALL_TORCH}`,
    );
  }
  // The host, and its matrix-product rate on each side, measured in this run: each case's floor follows.
  const host = processor();
  const gemm: Record<string, number> = {};
  for (const b of backends) {
    await useBackend(b);
    gemm[b] = gemmRate();
  }
  if (withTorch) gemm['torch'] = runTorchCase<{ gflops: number }>({ kind: 'gemm', n: 1024 }, threads).gflops;
  console.log(
    `host: ${host.model} (${host.isa}, ${host.cores} cores); 1024^3 float32 product: ` +
      Object.entries(gemm)
        .map(([b, rate]) => `${b === 'torch' ? 'PyTorch' : b} ${rate.toFixed(1)} GFLOP/s`)
        .join(', '),
  );
  const results: Array<Record<string, unknown>> = [];
  const first = backends[0]!;
  const rows = [
    [
      'case',
      ...backends.map((b) => `${b} img/s`),
      'PyTorch img/s',
      ...backends.map((b) => `${b}/PyTorch`),
      'MFLOP/img',
      `${first} floor img/s`,
      `${first} % of floor`,
    ],
  ];
  // SNNL_BENCH_CASES picks cases by kind (see the top of this file), comma-separated.
  const kinds = process.env['SNNL_BENCH_CASES']?.split(',').map((k) => k.trim());
  for (const c of CASES.filter((c) => kinds === undefined || kinds.includes(c.kind))) {
    // Each backend trains its own copy of the network, built while that backend is in use.
    const measures: Array<() => number> = [];
    for (const b of backends) {
      await useBackend(b);
      measures.push(snnlSide(c));
    }
    const ours: number[][] = backends.map(() => []);
    const theirs: number[] = [];
    let version = '';
    for (let r = 0; r < rounds; r++) {
      for (let k = 0; k < backends.length; k++) {
        await useBackend(backends[k]);
        ours[k]!.push(measures[k]!());
      }
      if (withTorch) {
        const t = torchSide(c, threads);
        theirs.push(t.images_per_second);
        version = t.torch;
      }
    }
    const rates = ours.map(median);
    const flops = flopsPerImage(c);
    // A case's floor: the images per second if every operation ran at the GEMM rate measured above.
    const floors = Object.fromEntries(Object.entries(gemm).map(([b, rate]) => [b, (rate * 1e9) / flops]));
    const torchRate = withTorch ? median(theirs) : null;
    const ratios = rates.map((rate) => (torchRate ? rate / torchRate : null));
    const result: Record<string, unknown> = {
      case: c.name,
      torchImagesPerSecond: torchRate,
      rounds: { torch: theirs },
    };
    backends.forEach((b, k) => {
      result[`${b}ImagesPerSecond`] = rates[k];
      result[`${b}Ratio`] = ratios[k];
      (result['rounds'] as Record<string, number[]>)[b] = ours[k]!;
    });
    if (version) result['torch'] = version;
    result['flopsPerImage'] = flops;
    result['floorImagesPerSecond'] = floors;
    result['shareOfFloor'] = Object.fromEntries(backends.map((b, k) => [b, rates[k]! / floors[b]!]));
    results.push(result);
    rows.push([
      c.name,
      ...rates.map((rate) => rate.toFixed(0)),
      torchRate?.toFixed(0) ?? '-',
      ...ratios.map((ratio) => (ratio ? `${ratio.toFixed(2)}x` : '-')),
      (flops / 1e6).toFixed(2),
      floors[first]!.toFixed(0),
      `${((100 * rates[0]!) / floors[first]!).toFixed(0)}%`,
    ]);
    console.log(rows.at(-1)!.join('  |  '));
  }
  console.log('\n' + formatTable(rows));
  const overhead: Record<string, Overhead> = {};
  if (kinds === undefined || kinds.includes('cnn')) {
    for (const b of backends) {
      await useBackend(b);
      overhead[b] = interleavedOverhead();
    }
    const percent = (v: number) => `${(100 * v).toFixed(1)}%`;
    const parts = Object.entries(overhead).map(
      ([b, v]) =>
        `${b} ${percent(v.median)} (quartiles ${percent(v.quartiles[0])} to ${percent(v.quartiles[1])}; ` +
        `ratio of totals ${percent(v.ofTotals)})`,
    );
    console.log(
      `\nSNNL on the CNN's 5 hidden layers costs, over its plain step (median of ${OVERHEAD_PAIRS} interleaved pairs): ${parts.join(', ')}`,
    );
  }
  const out = process.env['SNNL_BENCH_OUT'] ?? 'bench-results.json';
  const record = {
    date: new Date().toISOString(),
    processor: host,
    gemmGflops: gemm,
    backends: described,
    threads,
    node: process.version,
    tfjs: tf.version.tfjs,
    openblas: blas,
    results,
    snnlOverhead: overhead,
  };
  writeAtomic(out, JSON.stringify(record, null, 2) + '\n');
  console.log(`\nwritten: ${out}`);
}

main().catch((error: unknown) => {
  console.error(`snnl bench: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
