/**
 * Which code a result came from: the package's version, and the git commit when snnl runs from a checkout
 * (with whether the checkout had uncommitted changes), so that a table can show its runs share one version.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const root = join(import.meta.dirname, '..');

export interface CodeVersion {
  /** The package's version (package.json). */
  version: string;
  /** The commit checked out, or null outside a git checkout. */
  commit: string | null;
  /** Whether tracked files differed from that commit (null outside a checkout). */
  dirty: boolean | null;
}

let cached: CodeVersion | undefined;

function git(args: string[]): string | null {
  try {
    return execFileSync('git', args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

export function codeVersion(): CodeVersion {
  if (cached) return cached;
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  const inCheckout = existsSync(join(root, '.git'));
  const commit = inCheckout ? git(['rev-parse', 'HEAD']) : null;
  const status = commit === null ? null : git(['status', '--porcelain', '--untracked-files=no']);
  cached = { version: pkg.version, commit, dirty: status === null ? null : status.length > 0 };
  return cached;
}
