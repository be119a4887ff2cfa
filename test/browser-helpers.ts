/**
 * Running a bundle of the browser entry in Debian's headless Chromium: where it is, the flags a closed
 * network needs, and esbuild bundling of a small program that imports 'snnl' as a user would.
 */
import { build } from 'esbuild';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const ROOT = join(import.meta.dirname, '..');

export const CHROMIUM = '/usr/bin/chromium';

/** The flags this machine's closed network needs (no background connections), for a headless run. */
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** Bundles `program` (JavaScript importing 'snnl' as a user would) for the browser; returns the bundle's path. */
export async function bundleForBrowser(program: string): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'snnl-bundle-'));
  // 'snnl' resolves as a dependency would: through node_modules and the package's export conditions.
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'snnl'));
  writeFileSync(join(dir, 'main.js'), program);
  await build({
    entryPoints: [join(dir, 'main.js')],
    absWorkingDir: dir,
    nodePaths: [join(ROOT, 'node_modules')],
    bundle: true,
    platform: 'browser',
    format: 'iife',
    outfile: join(dir, 'bundle.js'),
    logLevel: 'silent',
  });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><meta charset="utf-8"><script src="bundle.js"></script>');
  return dir;
}
