/**
 * The one place that chooses and prepares the compute backend.
 *
 * `auto` picks the fastest backend available on this machine (today: wasm with snnl's kernel fixes),
 * `wasm` and `cpu` name one. The choice comes from the caller, else `SNNL_BACKEND`, else `auto`.
 */
import * as tf from '@tensorflow/tfjs-core';
// The union package registers every op's gradient (tfjs-core's own Node bundle registers none).
import '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-backend-wasm';
import { InputError } from '../errors.js';
import { installWasmKernels } from './wasm-kernels.js';

export const BACKENDS = ['auto', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKENDS)[number];

/** Reads a backend choice from a flag or the environment, rejecting unknown names. */
export function parseBackend(value: string | undefined, subject = '--backend'): BackendChoice {
  const name = value ?? 'auto';
  if ((BACKENDS as readonly string[]).includes(name)) return name as BackendChoice;
  throw new InputError(subject, `unknown backend '${name}'; expected one of ${BACKENDS.join(', ')}`);
}

/**
 * Selects and initializes a backend; returns the name of the backend in use.
 * @param choice `auto`, `wasm` or `cpu`; defaults to `SNNL_BACKEND` or `auto`.
 */
export async function useBackend(choice?: string): Promise<string> {
  const fromEnv = choice === undefined && process.env['SNNL_BACKEND'] !== undefined;
  const name = parseBackend(choice ?? process.env['SNNL_BACKEND'], fromEnv ? 'SNNL_BACKEND' : '--backend');
  const target = name === 'auto' ? 'wasm' : name;
  if (target === 'wasm') installWasmKernels();
  const ok = await tf.setBackend(target);
  if (!ok) throw new Error(`the ${target} backend failed to initialize`);
  await tf.ready();
  if (target === 'cpu') {
    // The cpu backend greets Node users with advice to install tfjs-node, which cannot install here.
    (tf.backend() as unknown as { firstUse: boolean }).firstUse = false;
  }
  return tf.getBackend();
}
