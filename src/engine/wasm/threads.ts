/**
 * The wasm backend's multithreaded build, loaded in Node.
 *
 * tfjs-backend-wasm 4.22 switches threads off in Node (tfjs issue 3830): its loader hands Emscripten's
 * pthread runtime blob: URLs for the worker script and the module source, which Node's worker_threads
 * cannot open. The package's own threaded build and worker script do support Node. This loader gives
 * them what Node can open instead: the worker script and the module source written to .cjs files, then
 * registers the resulting module as the 'wasm' backend.
 *
 * One patch, checked at load time: the C++ side caps its thread pool at half the logical cores
 * ("2 threads per core"), so on a 2-core machine it would run 1 thread. The module source's
 * emscripten_num_logical_cores is replaced by twice the threads asked for.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { writeAtomic } from '../../io/atomic.js';
import { BackendWasm, setThreadsCount } from '@tensorflow/tfjs-backend-wasm';

const require = createRequire(import.meta.url);

interface NodeWorker {
  unref(): void;
}

interface EmscriptenModule {
  cwrap(name: string, returnType: string | null, argTypes: string[]): (...args: number[]) => unknown;
  tfjs?: Record<string, unknown>;
  PThread?: { terminateAllThreads(): void; runningWorkers: NodeWorker[]; unusedWorkers: NodeWorker[] };
}

type Factory = (config: Record<string, unknown>) => Promise<EmscriptenModule>;

let loaded: EmscriptenModule | undefined;

/** Paths of the threaded build's files inside the installed package. */
function packageFiles() {
  const glue = require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.js');
  const root = dirname(dirname(glue));
  return {
    glue,
    wasm: join(root, 'dist', 'tfjs-backend-wasm-threaded-simd.wasm'),
    worker: require.resolve('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js'),
    version: (require('@tensorflow/tfjs-backend-wasm/package.json') as { version: string }).version,
  };
}

/** The cores query as the threaded build's module source has it (tfjs-backend-wasm 4.22). */
const CORES_QUERY =
  'function _emscripten_num_logical_cores(){if(ENVIRONMENT_IS_NODE)return require("os").cpus().length;return navigator["hardwareConcurrency"]}';

/** Writes `contents` to `path` unless it is there already, atomically. */
function writeOnce(path: string, contents: string): string {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeAtomic(path, contents);
  }
  return path;
}

/** The worker script and the patched module source as CommonJS files where Node can load them. */
function runtimeFiles(files: ReturnType<typeof packageFiles>, threads: number) {
  const dir = join(tmpdir(), `snnl-wasm-${files.version}-${process.getuid?.() ?? 0}`);
  // The package keeps the worker script in a template string, where its "\\n" escapes became newlines
  // inside string literals; put the escapes back, as tfjs-backend-wasm's own loader does.
  const workerSource = (require(files.worker) as { wasmWorkerContents: string }).wasmWorkerContents.replace(
    /\n/g,
    '\\n',
  );
  const source = readFileSync(files.glue, 'utf8');
  if (!source.includes(CORES_QUERY)) {
    throw new Error(`tfjs-backend-wasm ${files.version}'s threaded build changed; snnl's thread loader needs updating`);
  }
  const patched = source.replace(CORES_QUERY, `function _emscripten_num_logical_cores(){return ${2 * threads}}`);
  return {
    worker: writeOnce(join(dir, 'tfjs-backend-wasm-threaded-simd.worker.cjs'), workerSource),
    glue: writeOnce(join(dir, `tfjs-backend-wasm-threaded-simd.${threads}-threads.cjs`), patched),
  };
}

async function loadThreadedModule(threads: number): Promise<EmscriptenModule> {
  if (loaded) return loaded;
  const files = packageFiles();
  const runtime = runtimeFiles(files, threads);
  const factory = require(runtime.glue) as Factory;
  const module = await factory({
    locateFile: (path: string) =>
      path.endsWith('.worker.js') ? runtime.worker : path.endsWith('.wasm') ? files.wasm : path,
    // Each pthread worker evaluates the module source from this path.
    mainScriptUrlOrBlob: runtime.glue,
  });
  // The bridge tfjs-backend-wasm's own loader sets up (backend_wasm.js, init()).
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  loaded = module;
  return module;
}

/**
 * Registers the threaded build as the 'wasm' backend with `threads` threads (before the backend is
 * first used). The kernels registered for 'wasm' (the package's and snnl's) serve it unchanged.
 */
export function registerThreadedWasm(threads: number): void {
  setThreadsCount(threads);
  tf.removeBackend('wasm');
  tf.registerBackend('wasm', async () => new BackendWasm((await loadThreadedModule(threads)) as never), 2);
}

/**
 * Lets the process exit while the thread pool's workers wait for work: they are ref'd when started,
 * and XNNPACK's pool keeps them for the life of the backend. Call after the backend is initialized.
 */
export function unrefWasmThreads(): void {
  const pthreads = loaded?.PThread;
  for (const worker of [...(pthreads?.runningWorkers ?? []), ...(pthreads?.unusedWorkers ?? [])]) worker.unref();
}
