/**
 * The PyTorch side of the benchmarks (bench/torch_bench.py): Debian's python3-torch with OpenBLAS's OpenMP
 * build selected per command (the fastest BLAS measured on 2 cores), one case per process.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export const OPENBLAS = '/usr/lib/x86_64-linux-gnu/openblas-openmp';
/** Debian's python3-torch lives in the system Python, which a pyenv or venv python3 may hide. */
export const PYTHON = process.env['SNNL_PYTHON'] ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
export const INSTALL_TORCH = 'sudo apt-get install python3-torch libopenblas0-openmp';

export function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0;
}

export function openBlasAvailable(): boolean {
  return existsSync(OPENBLAS);
}

/** Runs one case of bench/torch_bench.py with `threads` threads and returns its JSON line. */
export function runTorchCase<T>(config: Record<string, unknown>, threads: number): T {
  const script = join(import.meta.dirname, '..', '..', 'bench', 'torch_bench.py');
  const run = spawnSync(PYTHON, [script, JSON.stringify({ ...config, threads })], {
    encoding: 'utf8',
    env: { ...process.env, LD_LIBRARY_PATH: OPENBLAS, OMP_NUM_THREADS: String(threads) },
  });
  if (run.status !== 0) throw new Error(`PyTorch side failed: ${run.stderr.trim().split('\n').at(-1)}`);
  return JSON.parse(run.stdout.trim().split('\n').at(-1)!) as T;
}
