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

  it('selects cpu; without the native addon, auto picks wasm and says how to enable native', () => {
    expect(select({}, 'cpu').stdout.trim()).toBe('cpu 64');
    const run = select({ SNNL_THREADS: '1', SNNL_NATIVE_ADDON: '/nonexistent/snnl_native.node' }, 'auto');
    expect(run.stdout.trim()).toMatch(/^wasm/);
    const notice = run.stderr.trim().split('\n');
    expect(notice).toHaveLength(1);
    expect(notice[0]).toMatch(
      /snnl: using wasm \(the native addon is not built .*\); .*apt-get install libtorch-dev.*npx snnl build-native/,
    );
  });

  it('refuses --backend native without the addon, saying how to enable it', () => {
    const run = select({ SNNL_NATIVE_ADDON: '/nonexistent/snnl_native.node' }, 'native');
    expect(run.status).not.toBe(0);
    expect(run.stderr).toMatch(/backend: the native backend is not available: the native addon is not built/);
    expect(run.stderr).toMatch(/npx snnl build-native/);
  });

  it('rejects a bad SNNL_THREADS or backend name, naming it', () => {
    expect(select({ SNNL_THREADS: 'many' }).stderr).toMatch(
      /SNNL_THREADS: expected a whole number of threads above 0, got 'many'/,
    );
    expect(select({}, 'tpu').stderr).toMatch(/backend: unknown backend 'tpu'; expected one of auto, native, wasm, cpu/);
  });
});
