import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ENGINE = join(import.meta.dirname, '..', 'dist', 'engine', 'backend.js');

/** Runs a fresh Node process that selects a backend and prints what it got. */
function select(env: Record<string, string>, choice = 'wasm') {
  const script = `
    const { useBackend, describeBackend } = await import(${JSON.stringify(ENGINE)});
    const tf = await import('@tensorflow/tfjs-core');
    await useBackend(${JSON.stringify(choice)});
    const y = tf.matMul(tf.ones([64, 64]), tf.ones([64, 64]));
    console.log(describeBackend(), y.dataSync()[0]);`;
  return spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 60_000,
    cwd: join(import.meta.dirname, '..'),
  });
}

describe('backend selection', () => {
  it('runs the multithreaded wasm build with SNNL_THREADS threads, and the process exits by itself', () => {
    const run = select({ SNNL_THREADS: '2' });
    expect(run.status).toBe(0);
    expect(run.stdout.trim()).toBe('wasm (2 threads) 64');
  });

  it('runs the stock single-threaded build with SNNL_THREADS=1', () => {
    expect(select({ SNNL_THREADS: '1' }).stdout.trim()).toBe('wasm (1 thread) 64');
  });

  it('selects cpu, and auto picks wasm', () => {
    expect(select({}, 'cpu').stdout.trim()).toBe('cpu 64');
    expect(select({ SNNL_THREADS: '1' }, 'auto').stdout.trim()).toMatch(/^wasm/);
  });

  it('rejects a bad SNNL_THREADS or backend name, naming it', () => {
    expect(select({ SNNL_THREADS: 'many' }).stderr).toMatch(
      /SNNL_THREADS: expected a whole number of threads above 0, got 'many'/,
    );
    expect(select({}, 'tpu').stderr).toMatch(/--backend: unknown backend 'tpu'; expected one of auto, wasm, cpu/);
  });
});
