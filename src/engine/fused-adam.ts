/**
 * Adam's update of one variable as a single kernel: one pass over the value, both moments and the
 * gradient, where tfjs's AdamOptimizer runs about a dozen elementwise ops (each a pass over memory and a
 * dispatch). Registered for wasm (reading and writing the wasm heap directly) and cpu.
 *
 *   m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,
 *   value' = value - lr (m' / c1) / (sqrt(v' / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
 * which is tfjs's AdamOptimizer.applyGradients, term for term.
 *
 * On wasm the update runs as a SIMD WebAssembly function on the backend's own memory (src/engine/
 * wasm-adam.ts); on the multithreaded build, whose memory is shared, a large variable's update is split
 * between this thread and one helper worker running the same function on the same memory. In plain
 * JavaScript the REFERENCE CNN's 5.1 million weights took about 40 ms a step.
 */
import { Worker } from 'node:worker_threads';
import { registerKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';
import { adamOn, compileAdam, type AdamFunction, type WasmMemory } from './wasm-adam.js';

export const FUSED_ADAM = 'SnnlFusedAdam';

export interface FusedAdamAttrs {
  beta1: number;
  beta2: number;
  learningRate: number;
  epsilon: number;
  /** 1 - beta1^t and 1 - beta2^t for this step t (counted from 1). */
  correction1: number;
  correction2: number;
}

/**
 * Updates elements [start, end) in JavaScript: `arrays` are the value, m, v, gradient, new value, new m
 * and new v (the cpu kernel, and what the wasm SIMD function leaves: a tail shorter than four, or all of
 * it where the function cannot run).
 */
function updateRange(arrays: Float32Array[], start: number, end: number, a: FusedAdamAttrs): void {
  const [value, m, v, g, outValue, outM, outV] = arrays as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const { beta1, beta2, learningRate, epsilon, correction1, correction2 } = a;
  const keep1 = 1 - beta1;
  const keep2 = 1 - beta2;
  for (let i = start; i < end; i++) {
    const gi = g[i]!;
    const mi = Math.fround(m[i]! * beta1 + gi * keep1);
    const vi = Math.fround(v[i]! * beta2 + gi * gi * keep2);
    outM[i] = mi;
    outV[i] = vi;
    outValue[i] = value[i]! - (learningRate * (mi / correction1)) / (Math.sqrt(vi / correction2) + epsilon);
  }
}

/** The SIMD function's scalar arguments, in its order (src/engine/wasm-adam.ts). */
const simdScalars = (a: FusedAdamAttrs) => [
  a.beta1,
  a.beta2,
  1 - a.beta1,
  1 - a.beta2,
  a.learningRate,
  a.correction1,
  a.correction2,
  a.epsilon,
];

/** Below this many elements the handshake with the helper costs more than it saves. */
const SPLIT_AT = 1 << 16;

/**
 * The helper worker: the same SIMD module on the same memory. Control words: [0] job number, [1] job
 * done, [2..8] the seven byte addresses, [9] bytes, [10] 1 if the job failed; the eight scalars in a
 * Float64Array. The worker never dies on a failed job: this thread waits for it synchronously.
 */
const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { control, scalars, module, memory } = workerData;
const adam = new WebAssembly.Instance(module, { env: { memory } }).exports.adam;
let seen = 0;
for (;;) {
  Atomics.wait(control, 0, seen);
  seen = Atomics.load(control, 0);
  try {
    adam(control[2], control[3], control[4], control[5], control[6], control[7], control[8], control[9],
      scalars[0], scalars[1], scalars[2], scalars[3], scalars[4], scalars[5], scalars[6], scalars[7]);
    control[10] = 0;
  } catch {
    control[10] = 1;
  }
  Atomics.store(control, 1, seen);
  Atomics.notify(control, 1);
}
`;

class Helper {
  private readonly control = new Int32Array(new SharedArrayBuffer(16 * 4));
  private readonly scalars = new Float64Array(new SharedArrayBuffer(8 * 8));
  private readonly worker: Worker;
  private job = 0;

  constructor(module: object, memory: WasmMemory) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { control: this.control, scalars: this.scalars, module, memory },
    });
    this.worker.unref();
  }

  /** Starts `adam(addresses..., bytes, scalars...)` on the worker. */
  start(addresses: number[], bytes: number, scalars: number[]): void {
    this.control.set(addresses, 2);
    this.control[9] = bytes;
    this.scalars.set(scalars);
    this.job = (this.job + 1) & 0x3fffffff;
    Atomics.store(this.control, 0, this.job);
    Atomics.notify(this.control, 0);
  }

  /** Waits for the job started last. */
  wait(): void {
    for (let done = Atomics.load(this.control, 1); done !== this.job; done = Atomics.load(this.control, 1)) {
      Atomics.wait(this.control, 1, done);
    }
    if (this.control[10] !== 0) throw new Error("snnl's Adam helper thread failed to update its half");
  }
}

interface Simd {
  adam: AdamFunction;
  /** null where no worker starts (the whole update then runs on this thread). */
  helper: Helper | null;
}

/** Per wasm memory: the SIMD update and its helper; null where the memory is not exposed or SIMD fails. */
const simdByMemory = new WeakMap<object, Simd | null>();

function simdFor(memory: WasmMemory): Simd | null {
  if (!simdByMemory.has(memory)) {
    let simd: Simd | null = null;
    try {
      const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
      const module = compileAdam(shared);
      const adam = adamOn(memory, module);
      if (adam) {
        let helper: Helper | null = null;
        try {
          if (shared) helper = new Helper(module, memory);
        } catch {
          helper = null;
        }
        simd = { adam, helper };
      }
    } catch {
      simd = null;
    }
    simdByMemory.set(memory, simd);
  }
  return simdByMemory.get(memory)!;
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
  /** The Emscripten module; the multithreaded build exposes its WebAssembly.Memory. */
  wasm?: { wasmMemory?: WasmMemory };
}

interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

const ORDER = ['value', 'm', 'v', 'gradient'];

const wasmKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmBackendLike;
  const a = attrs as unknown as FusedAdamAttrs;
  const tensors = ORDER.map((k) => inputs[k]!);
  // Allocate first: a later allocation may grow the heap and detach views taken before it.
  const outs = tensors.slice(0, 3).map((t) => wasm.makeOutput(t.shape, 'float32'));
  const views = [...tensors, ...outs].map((t) => wasm.typedArrayFromHeap(t));
  const n = views[3]!.length;
  const memory = wasm.wasm?.wasmMemory;
  const simd = memory ? simdFor(memory) : null;
  let done = 0;
  if (simd) {
    // Blocks of four by SIMD (half on the helper for a large variable), the rest below.
    const blocks = n >> 2;
    const addresses = views.map((view) => view.byteOffset);
    const scalars = simdScalars(a);
    const first = simd.helper && n >= SPLIT_AT ? blocks >> 1 : 0;
    if (first > 0) simd.helper!.start(addresses, first * 16, scalars);
    try {
      simd.adam(...addresses.map((address) => address + first * 16), (blocks - first) * 16, ...scalars);
    } finally {
      // Never return while the helper still writes into these outputs.
      if (first > 0) simd.helper!.wait();
    }
    done = blocks * 4;
  }
  if (done < n) updateRange(views, done, n, a);
  return outs;
};

const cpuKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const tensors = ORDER.map((k) => inputs[k]!);
  const values = tensors.map((t) => cpu.data.get(t.dataId).values);
  const outs = [0, 1, 2].map(() => new Float32Array(values[0]!.length));
  updateRange([...values, ...outs], 0, values[0]!.length, attrs as unknown as FusedAdamAttrs);
  return outs.map((o, k) => cpu.makeTensorInfo(tensors[k]!.shape, 'float32', o));
};

let registered = false;

export function registerFusedAdam(): void {
  if (registered) return;
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'wasm', kernelFunc: wasmKernel });
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'cpu', kernelFunc: cpuKernel });
  registered = true;
}
