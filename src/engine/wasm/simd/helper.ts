/**
 * One helper thread for snnl's own WebAssembly functions on the wasm backend's shared memory: it runs
 * an export of a module on part of a job while this thread does the rest, so that data movement and
 * Adam's update use both cores as the backend's own kernels do.
 *
 * Control words: [0] job number, [1] job done, [2] function index, [3] argument count, [4] 1 if the job
 * failed; the arguments in a Float64Array. The worker never dies on a failed job: this thread waits for
 * it synchronously and throws.
 */
import { Worker } from 'node:worker_threads';
import type { WasmMemory } from './asm.js';

const MAX_ARGS = 24;

const WORKER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { control, args, module, memory, names } = workerData;
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const functions = names.map((name) => exports[name]);
let seen = 0;
for (;;) {
  Atomics.wait(control, 0, seen);
  seen = Atomics.load(control, 0);
  try {
    functions[control[2]](...args.subarray(0, control[3]));
    control[4] = 0;
  } catch {
    control[4] = 1;
  }
  Atomics.store(control, 1, seen);
  Atomics.notify(control, 1);
}
`;

export class WasmHelper {
  private readonly control = new Int32Array(new SharedArrayBuffer(8 * 4));
  private readonly args = new Float64Array(new SharedArrayBuffer(MAX_ARGS * 8));
  private readonly worker: Worker;
  private job = 0;

  /** `names`: the exports this helper may run, in the order `start` indexes them. */
  constructor(
    module: object,
    memory: WasmMemory,
    private readonly names: string[],
  ) {
    this.worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: { control: this.control, args: this.args, module, memory, names },
    });
    this.worker.unref();
  }

  /** Starts export `name` with `args` on the helper. */
  start(name: string, args: number[]): void {
    const index = this.names.indexOf(name);
    if (index < 0 || args.length > MAX_ARGS) throw new Error(`the wasm helper cannot run ${name}`);
    this.control[2] = index;
    this.control[3] = args.length;
    this.args.set(args);
    this.job = (this.job + 1) & 0x3fffffff;
    Atomics.store(this.control, 0, this.job);
    Atomics.notify(this.control, 0);
  }

  /** Waits for the job started last; throws if it failed. */
  wait(): void {
    for (let done = Atomics.load(this.control, 1); done !== this.job; done = Atomics.load(this.control, 1)) {
      Atomics.wait(this.control, 1, done);
    }
    if (this.control[4] !== 0) throw new Error("snnl's wasm helper thread failed its part of a job");
  }

  /** Runs `mine` here while the helper runs `name(args)`; returns only when both are done. */
  split(name: string, args: number[], mine: () => void): void {
    this.start(name, args);
    try {
      mine();
    } finally {
      // Never return while the helper still writes into outputs.
      this.wait();
    }
  }
}
