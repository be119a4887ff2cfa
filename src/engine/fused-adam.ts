/**
 * Adam's update of one variable as a single kernel: one pass over the value, both moments and the
 * gradient, where tfjs's AdamOptimizer runs about a dozen elementwise ops (each a pass over memory and a
 * dispatch). Registered for wasm (reading and writing the wasm heap directly) and cpu.
 *
 *   m' = b1 m + (1 - b1) g,  v' = b2 v + (1 - b2) g^2,
 *   value' = value - lr (m' / c1) / (sqrt(v' / c2) + eps),  c1 = 1 - b1^t, c2 = 1 - b2^t
 * which is tfjs's AdamOptimizer.applyGradients, term for term.
 *
 * On the multithreaded wasm build the heap is a SharedArrayBuffer, so a large variable's update is split
 * between this thread and one helper worker that sees the same memory (the REFERENCE CNN's 5.1 million
 * weights: about 30 ms a step on one thread).
 */
import { Worker, MessageChannel, type MessagePort } from 'node:worker_threads';
import { registerKernel, type KernelFunc, type TensorInfo } from '@tensorflow/tfjs-core';

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
 * Updates elements [start, end) of value, m, v from g. `arrays` and `offsets` give, in this order, the
 * value, m, v, gradient, new value, new m and new v: an array and where the tensor starts in it (on the
 * wasm heap all seven are the same array). `p`: beta1, beta2, learning rate, epsilon, c1, c2. Self-
 * contained (no outer names): the helper worker runs its source text.
 */
function updateRange(
  arrays: Float32Array[],
  offsets: ArrayLike<number>,
  start: number,
  end: number,
  p: ArrayLike<number>,
) {
  const [value, m, v, g, outValue, outM, outV] = arrays as [
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
    Float32Array,
  ];
  const [ov, om, oVv, og, oNv, oNm, oNvv] = Array.from({ length: 7 }, (_, k) => offsets[k]!) as number[] as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const beta1 = p[0]!;
  const beta2 = p[1]!;
  const learningRate = p[2]!;
  const epsilon = p[3]!;
  const correction1 = p[4]!;
  const correction2 = p[5]!;
  const keep1 = 1 - beta1;
  const keep2 = 1 - beta2;
  for (let i = start; i < end; i++) {
    const gi = g[og + i]!;
    const mi = Math.fround(m[om + i]! * beta1 + gi * keep1);
    const vi = Math.fround(v[oVv + i]! * beta2 + gi * gi * keep2);
    outM[oNm + i] = mi;
    outV[oNvv + i] = vi;
    outValue[oNv + i] = value[ov + i]! - (learningRate * (mi / correction1)) / (Math.sqrt(vi / correction2) + epsilon);
  }
}

const parameters = (a: FusedAdamAttrs) => [a.beta1, a.beta2, a.learningRate, a.epsilon, a.correction1, a.correction2];

/** Below this many elements the handshake with the helper costs more than it saves. */
const SPLIT_AT = 1 << 16;

/**
 * The helper worker. Control words: [0] job number (negative: quit), [1] job done, [2..8] the seven
 * offsets, [9] start, [10] end; the parameters in a Float64Array. A grown heap is a new
 * SharedArrayBuffer: it is posted on a port the worker drains synchronously before each job.
 */
const WORKER_SOURCE = `
const { workerData, receiveMessageOnPort } = require('node:worker_threads');
const updateRange = (${updateRange.toString()});
const { control, params, port } = workerData;
let heap = null;
let seen = 0;
for (;;) {
  Atomics.wait(control, 0, seen);
  seen = Atomics.load(control, 0);
  if (seen < 0) break;
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) heap = new Float32Array(m.message);
  const arrays = [heap, heap, heap, heap, heap, heap, heap];
  updateRange(arrays, control.subarray(2, 9), control[9], control[10], params);
  Atomics.store(control, 1, seen);
  Atomics.notify(control, 1);
}
`;

class Helper {
  private readonly control = new Int32Array(new SharedArrayBuffer(16 * 4));
  private readonly params = new Float64Array(new SharedArrayBuffer(8 * 8));
  private readonly port: MessagePort;
  private readonly worker: Worker;
  private sent: ArrayBufferLike | undefined;
  private job = 0;

  constructor() {
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { control: this.control, params: this.params, port: port2 },
      transferList: [port2],
    });
    this.worker.unref();
    this.port.unref();
  }

  /** Runs [0, half) on the worker and [half, n) here; returns when both are done. */
  run(heap: Float32Array, offsets: number[], n: number, p: number[]): void {
    if (heap.buffer !== this.sent) {
      this.port.postMessage(heap.buffer);
      this.sent = heap.buffer;
    }
    const half = n >> 1;
    this.control.set(offsets, 2);
    this.control[9] = 0;
    this.control[10] = half;
    this.params.set(p);
    const job = (this.job = (this.job + 1) & 0x3fffffff);
    Atomics.store(this.control, 0, job);
    Atomics.notify(this.control, 0);
    updateRange([heap, heap, heap, heap, heap, heap, heap], offsets, half, n, p);
    for (let done = Atomics.load(this.control, 1); done !== job; done = Atomics.load(this.control, 1)) {
      Atomics.wait(this.control, 1, done);
    }
  }
}

let helper: Helper | null | undefined;

/** The helper worker, started on first use; null where workers cannot start (the update then runs here). */
function getHelper(): Helper | null {
  if (helper === undefined) {
    try {
      helper = new Helper();
    } catch {
      helper = null;
    }
  }
  return helper;
}

interface WasmBackendLike {
  makeOutput(shape: number[], dtype: 'float32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array;
}

interface CpuBackendLike {
  data: { get(dataId: object): { values: Float32Array } };
  makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): TensorInfo;
}

const ORDER = ['value', 'm', 'v', 'gradient'];

const wasmKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmBackendLike;
  const tensors = ORDER.map((k) => inputs[k]!);
  // Allocate first: a later allocation may grow the heap and detach views taken before it.
  const outs = tensors.slice(0, 3).map((t) => wasm.makeOutput(t.shape, 'float32'));
  const views = [...tensors, ...outs].map((t) => wasm.typedArrayFromHeap(t));
  const n = views[3]!.length;
  const p = parameters(attrs as unknown as FusedAdamAttrs);
  const shared = typeof SharedArrayBuffer !== 'undefined' && views[0]!.buffer instanceof SharedArrayBuffer;
  const worker = shared && n >= SPLIT_AT ? getHelper() : null;
  if (worker) {
    const heap = new Float32Array(views[0]!.buffer);
    worker.run(
      heap,
      views.map((view) => view.byteOffset >> 2),
      n,
      p,
    );
  } else {
    updateRange(views, [0, 0, 0, 0, 0, 0, 0], 0, n, p);
  }
  return outs;
};

const cpuKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const cpu = backend as unknown as CpuBackendLike;
  const tensors = ORDER.map((k) => inputs[k]!);
  const values = tensors.map((t) => cpu.data.get(t.dataId).values);
  const outs = [0, 1, 2].map(() => new Float32Array(values[0]!.length));
  updateRange(
    [...values, ...outs],
    [0, 0, 0, 0, 0, 0, 0],
    0,
    values[0]!.length,
    parameters(attrs as unknown as FusedAdamAttrs),
  );
  return outs.map((o, k) => cpu.makeTensorInfo(tensors[k]!.shape, 'float32', o));
};

let registered = false;

export function registerFusedAdam(): void {
  if (registered) return;
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'wasm', kernelFunc: wasmKernel });
  registerKernel({ kernelName: FUSED_ADAM, backendName: 'cpu', kernelFunc: cpuKernel });
  registered = true;
}
