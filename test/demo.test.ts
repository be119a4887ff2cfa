/**
 * The browser demo (npm run demo): built and served on localhost, opened in headless Chromium; after a
 * number of training steps of each run, no console errors, accuracy that rises, the toy moving, and a
 * screenshot (docs/demo.png when SNNL_DEMO_SCREENSHOT names it). Skipped where Debian's chromium is missing.
 */
import type { Server } from 'node:http';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { describe, expect } from 'vitest';
import type { DemoState } from '../demo/state.js';
import { needs } from './helpers.js';

const CHROMIUM = '/usr/bin/chromium';
const it = needs(existsSync(CHROMIUM), 'Debian package chromium is not installed');
const STEPS = Number(process.env['SNNL_DEMO_STEPS'] ?? 40);

describe('the browser demo', () => {
  it(
    `trains in headless Chromium for ${STEPS} steps a run, with no console errors and accuracy rising`,
    async () => {
      const script = '../scripts/demo.mjs';
      const { buildDemo, serveDemo } = (await import(script)) as {
        buildDemo: () => Promise<string>;
        serveDemo: (port: number) => Promise<Server>;
      };
      await buildDemo();
      const server = await serveDemo(0);
      const port = (server.address() as { port: number }).port;
      const browser = await chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--no-sandbox',
          '--disable-quic',
          '--no-first-run',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
        const errors: string[] = [];
        page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
        page.on('pageerror', (e) => errors.push(String(e)));
        // wasm: the same backend on every machine (webgl in headless Chromium is a software renderer).
        await page.goto(`http://127.0.0.1:${port}/?backend=wasm`);
        await page.waitForFunction(
          `window.demo && (window.demo.error || ['baseline', 'disentangle', 'entangle'].every((r) => window.demo.steps[r] >= ${STEPS}))`,
          undefined,
          { timeout: Math.max(240_000, STEPS * 3_000), polling: 500 },
        );
        const state = (await page.evaluate('window.demo')) as DemoState;
        expect(state.error).toBeUndefined();
        expect(errors).toEqual([]);
        expect(state.backend).toBe('wasm');
        expect(state.toySteps).toBeGreaterThan(10);
        for (const run of ['baseline', 'disentangle', 'entangle']) {
          const accuracy = state.accuracy[run]!;
          expect(accuracy.length, run).toBeGreaterThanOrEqual(3);
          expect(state.entanglement[run]!['hidden2']!.length).toBe(accuracy.length);
        }
        // The baseline learns: from chance to well above it. The entangled network (factor -1) learns too,
        // more slowly (its hidden layers mix first), with its hidden layers more entangled than the baseline's.
        const baseline = state.accuracy['baseline']!;
        expect(baseline.at(-1)!).toBeGreaterThan(baseline[0]! + 0.3);
        const entangled = state.accuracy['entangle']!;
        expect(entangled.at(-1)!).toBeGreaterThan(entangled[0]! + 0.05);
        expect(state.entanglement['entangle']!['hidden2']!.at(-1)!).toBeGreaterThan(
          state.entanglement['baseline']!['hidden2']!.at(-1)!,
        );
        const shot = process.env['SNNL_DEMO_SCREENSHOT'] ?? join(mkdtempSync(join(tmpdir(), 'snnl-demo-')), 'demo.png');
        await page.screenshot({ path: shot, fullPage: true });
        expect(existsSync(shot)).toBe(true);
      } finally {
        await browser.close();
        server.close();
      }
    },
    Math.max(300_000, STEPS * 3_000 + 60_000),
  );
});
