/**
 * The one place that chooses and prepares the compute backend.
 *
 * `auto` picks the fastest backend available on this machine (today: wasm with snnl's kernel fixes,
 * multithreaded), `wasm` and `cpu` name one. The choice comes from the caller, else `SNNL_BACKEND`,
 * else `auto`. `SNNL_THREADS` sets the wasm threads (default: every core; 1 runs the stock
 * single-threaded build).
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every op's gradient (tfjs-core's own Node bundle registers none).
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { InputError } from '../errors.js';
import { installWasmKernels } from './wasm-kernels.js';
import { registerThreadedWasm, unrefWasmThreads } from './wasm-threads.js';

export const BACKENDS = ['auto', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

/** Reads a backend choice from a flag or the environment, rejecting unknown names. */
export function parseBackend(value: string | undefined, subject = '--backend'): BackendChoice {
  const name = value ?? 'auto';
  if ((BACKENDS as readonly string[]).includes(name)) return name as BackendChoice;
  throw new InputError(subject, `unknown backend '${name}'; expected one of ${BACKENDS.join(', ')}`);
}

function wasmThreads(): number {
  const value = process.env['SNNL_THREADS'];
  if (value === undefined) return availableParallelism();
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new InputError('SNNL_THREADS', `expected a whole number of threads above 0, got '${value}'`);
  return n;
}

let wasmPrepared = false;

/** Makes the 'wasm' backend the threaded build (when more than 1 thread is asked for), once. */
async function prepareWasm(): Promise<void> {
  if (wasmPrepared) return;
  wasmPrepared = true;
  installWasmKernels();
  const threads = wasmThreads();
  if (threads === 1) return;
  const stock = tf.findBackendFactory('wasm');
  registerThreadedWasm(threads);
  if (!(await tf.setBackend('wasm'))) {
    // Fall back to the stock single-threaded build, and say so.
    tf.removeBackend('wasm');
    if (stock) tf.registerBackend('wasm', stock, 2);
    process.stderr.write(
      'snnl: the multithreaded wasm build failed to start; using one thread (SNNL_THREADS=1 hides this)\n',
    );
    return;
  }
  unrefWasmThreads();
}

/**
 * Selects and initializes a backend; returns the name of the backend in use.
 * @param choice `auto`, `wasm` or `cpu`; defaults to `SNNL_BACKEND` or `auto`.
 */
export async function useBackend(choice?: string): Promise<string> {
  const fromEnv = choice === undefined && process.env['SNNL_BACKEND'] !== undefined;
  const name = parseBackend(choice ?? process.env['SNNL_BACKEND'], fromEnv ? 'SNNL_BACKEND' : '--backend');
  const target = name === 'auto' ? 'wasm' : name;
  if (target === 'wasm') await prepareWasm();
  const ok = await tf.setBackend(target);
  if (!ok) throw new Error(`the ${target} backend failed to initialize`);
  await tf.ready();
  if (target === 'cpu') {
    // The cpu backend greets Node users with advice to install tfjs-node, which cannot install here.
    (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  }
  return tf.getBackend();
}

/** The backend in use, for reports: 'wasm (2 threads)', 'cpu'. */
export function describeBackend(): string {
  const name = tf.getBackend();
  return name === 'wasm' ? `wasm (${getThreadsCount()} thread${getThreadsCount() === 1 ? '' : 's'})` : name;
}
