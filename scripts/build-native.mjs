#!/usr/bin/env node
// Builds snnl's native backend (native/snnl_native.cc) against Debian's LibTorch with node-gyp.
//
//   npx snnl build-native (or npm run build:native here)
//                                   build it; fails, saying why, where LibTorch is missing
//   node scripts/build-native.mjs --optional
//                                   what `npm install` runs: builds where LibTorch is installed, else
//                                   prints one line and succeeds (the native backend is optional)
//
// LibTorch: sudo apt-get install libtorch-dev libopenblas0-openmp
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const optional = process.argv.includes('--optional');
const root = join(import.meta.dirname, '..');
const enable = 'sudo apt-get install libtorch-dev libopenblas0-openmp && npx snnl build-native';

function stop(message) {
  if (optional) {
    console.log(`snnl: native backend not built (${message}); to enable it: ${enable}`);
    process.exit(0);
  }
  console.error(
    `build:native: ${message}. Install LibTorch first: sudo apt-get install libtorch-dev libopenblas0-openmp`,
  );
  process.exit(1);
}

if (process.env.SNNL_SKIP_NATIVE === '1') stop('SNNL_SKIP_NATIVE=1');
const headers = '/usr/include/ATen/ATen.h';
const library = '/usr/lib/x86_64-linux-gnu/libtorch_cpu.so';
if (!existsSync(headers)) stop(`LibTorch's headers are missing (no ${headers})`);
if (!existsSync(library)) stop(`LibTorch's library is missing (no ${library})`);

// node-gyp: the one npm runs scripts with (npm_config_node_gyp), else npm's own copy next to this node.
const candidates = [
  process.env.npm_config_node_gyp,
  join(dirname(process.execPath), '..', 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
].filter(Boolean);
const gyp = candidates.find((c) => existsSync(c));
if (!gyp) stop('node-gyp was not found (it comes with npm)');
// Node's own headers, so that node-gyp never downloads them.
const nodedir = join(dirname(process.execPath), '..');
const args = [gyp, 'rebuild', '--directory', join(root, 'native')];
if (existsSync(join(nodedir, 'include', 'node', 'node_api.h'))) args.push(`--nodedir=${nodedir}`);

if (!existsSync('/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3')) {
  console.log(
    "snnl: warning: OpenBLAS's OpenMP build is missing, so LibTorch's matrix products use the system BLAS " +
      '(the reference BLAS is about 30x slower; the pthread OpenBLAS fights the OpenMP threads): ' +
      'sudo apt-get install libopenblas0-openmp, then npx snnl build-native',
  );
}
console.log('snnl: building the native backend (LibTorch) ...');
const run = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
if (run.status !== 0) {
  process.stderr.write(run.stdout + run.stderr);
  stop('node-gyp failed (output above)');
}
console.log('snnl: native backend built: native/build/Release/snnl_native.node');
