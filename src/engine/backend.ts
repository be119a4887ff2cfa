/**
 * The one place that chooses and prepares the compute backend.
 *
 * `auto` picks the fastest backend available on this machine: `native` (LibTorch, when its addon is
 * built), else wasm with snnl's kernel fixes, multithreaded, with a one-line notice saying how to enable
 * native. `native`, `wasm` and `cpu` name one. The choice comes from the caller, else `SNNL_BACKEND`,
 * else `auto`. `SNNL_THREADS` sets the threads of native and wasm (default: every core; for wasm, 1 runs
 * the stock single-threaded build).
 */
import { availableParallelism } from 'node:os';
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every op's gradient (tfjs-core's own Node bundle registers none).
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { getThreadsCount } from '@tensorflow/tfjs-backend-wasm';
import { InputError } from '../errors.js';
import { registerCpuKernels } from './cpu/register.js';
import { registerGradients } from './gradients.js';
import { ENABLE_NATIVE, loadAddon, type NativeAddon } from './native/addon.js';
import { registerNativeBackend } from './native/register.js';
import { registerWasmKernels } from './wasm/register.js';
import { registerThreadedWasm, unrefWasmThreads } from './wasm/threads.js';

export const BACKENDS = ['auto', 'native', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

/** Reads a backend choice from a flag or the environment, rejecting unknown names. */
export function parseBackend(value: string | undefined, subject = 'backend'): BackendChoice {
  const name = value ?? 'auto';
  if ((BACKENDS as readonly string[]).includes(name)) return name as BackendChoice;
  throw new InputError(subject, `unknown backend '${name}'; expected one of ${BACKENDS.join(', ')}`);
}

function threadsWanted(): number {
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
  registerWasmKernels();
  const threads = threadsWanted();
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

/** Registers the native backend when its addon loads; else returns why it is absent. */
function prepareNative(): { addon: NativeAddon } | { reason: string } {
  const loaded = loadAddon();
  if ('addon' in loaded) registerNativeBackend(loaded.addon, threadsWanted());
  return loaded;
}

let noticeShown = false;

/**
 * Selects and initializes a backend; returns the name of the backend in use.
 * @param choice `auto`, `native`, `wasm` or `cpu`; defaults to `SNNL_BACKEND` or `auto`.
 */
export async function useBackend(choice?: string): Promise<string> {
  const fromEnv = choice === undefined && process.env['SNNL_BACKEND'] !== undefined;
  const subject = fromEnv ? 'SNNL_BACKEND' : 'backend';
  const name = parseBackend(choice ?? process.env['SNNL_BACKEND'], subject);
  registerGradients();
  registerCpuKernels();
  let target: string = name;
  if (name === 'auto' || name === 'native') {
    const native = prepareNative();
    if ('addon' in native) {
      target = 'native';
    } else if (name === 'native') {
      throw new InputError(
        subject,
        `the native backend is not available: ${native.reason}; to enable it: ${ENABLE_NATIVE}`,
      );
    } else {
      target = 'wasm';
      if (!noticeShown && process.env['SNNL_QUIET_NATIVE'] === undefined) {
        process.stderr.write(`snnl: using wasm (${native.reason}); for the faster native backend: ${ENABLE_NATIVE}\n`);
      }
      noticeShown = true;
    }
  }
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

/** The backend in use, for reports: 'native (LibTorch, 2 threads)', 'wasm (2 threads)', 'cpu'. */
export function describeBackend(): string {
  const name = tf.getBackend();
  if (name === 'native') {
    const loaded = loadAddon();
    const threads = 'addon' in loaded ? loaded.addon.threads() : 0;
    return `native (LibTorch, ${threads} thread${threads === 1 ? '' : 's'})`;
  }
  return name === 'wasm' ? `wasm (${getThreadsCount()} thread${getThreadsCount() === 1 ? '' : 's'})` : name;
}
