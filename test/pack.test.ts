/**
 * snnl as a dependency: the package packed with `npm pack`, installed into a fresh project, runs the
 * README's library example (on wasm: npm does not build the native addon of a dependency), and
 * `npx snnl build-native` builds the native backend inside that project where LibTorch is installed.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { needs } from './helpers.js';

const ROOT = join(import.meta.dirname, '..');
const LIBTORCH = existsSync('/usr/include/ATen/ATen.h');
let project: string;
let packs: string;

/** The README's library example: the js block after its `library-example` marker. */
export function readmeLibraryExample(): string {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const from = readme.indexOf('<!-- library-example');
  expect(from).toBeGreaterThan(0);
  const block = /```js\n([\s\S]*?)```/.exec(readme.slice(from));
  return block![1]!;
}

const run = (command: string, args: string[], env: Record<string, string> = {}) =>
  spawnSync(command, args, { cwd: project, encoding: 'utf8', env: { ...process.env, ...env }, timeout: 300_000 });

beforeAll(() => {
  packs = mkdtempSync(join(tmpdir(), 'snnl-pack-'));
  // dist/ is built by `npm test` before the tests; the pack takes it as it is.
  execFileSync('npm', ['pack', '--ignore-scripts', '--pack-destination', packs], { cwd: ROOT, stdio: 'pipe' });
  const tarball = join(
    packs,
    readdirSync(packs).find((f) => f.endsWith('.tgz'))!,
  );
  project = mkdtempSync(join(tmpdir(), 'snnl-user-'));
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'user', private: true, type: 'module' }));
  const install = run('npm', ['install', tarball, '--prefer-offline', '--no-audit', '--no-fund']);
  if (install.status !== 0) throw new Error(`npm install of the packed package failed: ${install.stderr}`);
}, 600_000);

// The installed project holds ~400 MB (tfjs, its wasm files): removed, so repeated runs do not fill the disk.
afterAll(() => {
  for (const dir of [project, packs]) if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('snnl installed from its packed tarball', () => {
  it("ships what it needs and runs the README's library example, on wasm", () => {
    const installed = join(project, 'node_modules', 'snnl');
    for (const file of ['dist/index.js', 'dist/browser.js', 'native/snnl_native.cc', 'scripts/build-native.mjs'])
      expect(existsSync(join(installed, file)), file).toBe(true);
    // Nothing was built at install.
    expect(existsSync(join(installed, 'native', 'build'))).toBe(false);
    writeFileSync(join(project, 'example.mjs'), readmeLibraryExample());
    const example = run(process.execPath, ['example.mjs']);
    expect(example.status, example.stderr).toBe(0);
    expect(example.stdout).toMatch(/^training accuracy 0\.\d+/m);
    expect(example.stdout).toMatch(/^hidden SNNL \d+\.\d{3} at T=1; \d+\.\d{3} at the optimal T/m);
    expect(example.stdout).toMatch(/^out SNNL/m);
    expect(example.stdout).toMatch(/^reloaded from my-model\/model.json, same predictions: true$/m);
    // The regression head learns: its mean squared error falls over the three epochs.
    const [, first, last] = /^regression: mean squared error (\d+\.\d+) then (\d+\.\d+)$/m.exec(example.stdout)!;
    expect(Number(last)).toBeLessThan(Number(first));
    // One notice: wasm, and the one command that enables native here.
    expect(example.stderr).toMatch(/snnl: using wasm .*npx snnl build-native/);
    const help = run('npx', ['snnl', '--help']);
    expect(help.stdout).toMatch(/build-native/);
  }, 300_000);

  needs(LIBTORCH, 'Debian package libtorch-dev is not installed')(
    'npx snnl build-native builds the native backend inside the project, which the example then uses',
    () => {
      const built = run('npx', ['snnl', 'build-native']);
      expect(built.status, built.stdout + built.stderr).toBe(0);
      expect(existsSync(join(project, 'node_modules', 'snnl', 'native', 'build', 'Release', 'snnl_native.node'))).toBe(
        true,
      );
      const example = run(process.execPath, ['example.mjs'], { SNNL_BACKEND: 'native' });
      expect(example.status, example.stderr).toBe(0);
      expect(example.stdout).toMatch(/^hidden SNNL/m);
      expect(example.stderr).not.toMatch(/using wasm/);
    },
    300_000,
  );
});
