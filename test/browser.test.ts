/**
 * The browser entry: a small program importing 'snnl' is bundled by esbuild for the browser platform
 * (which fails on any Node built-in), run in headless Chromium, and its losses compared with Node's.
 * Skipped with the reason where Debian's chromium is missing; SNNL_REQUIRE_ALL=1 (CI) makes that a failure.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { beforeAll, describe, expect } from 'vitest';
import { snnl } from '../src/index.js';
import { needs, onBackend } from './helpers.js';
import { bundleForBrowser, CHROMIUM, CHROMIUM_ARGS } from './browser-helpers.js';
import { normalMatrix, seeded } from './oracle.js';

const it = needs(existsSync(CHROMIUM), 'Debian package chromium is not installed');

const b = 40;
const d = 12;
const features = normalMatrix(b, d, seeded(91));
const labels = Array.from({ length: b }, (_, i) => (i * 7) % 4);

const PROGRAM = `
import * as tf from '@tensorflow/tfjs';
import { snnl, measureLayers, trainWithSnnl, optimalTemperature } from 'snnl';
(async () => {
  try {
    await tf.setBackend('cpu');
    const x = tf.tensor2d(${JSON.stringify(features)});
    const y = ${JSON.stringify(labels)};
    const losses = {
      stable: snnl(x, y, { temperature: 3 }).dataSync()[0],
      cosine: snnl(x, y, { temperature: 0.5, distance: 'cosine' }).dataSync()[0],
      cleverhans: snnl(x, y, { temperature: 3, preset: 'cleverhans' }).dataSync()[0],
      optimal: optimalTemperature(x, y).loss,
    };
    const model = tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [${d}], units: 16, activation: 'relu', name: 'hidden' }),
      tf.layers.dense({ units: 4, activation: 'softmax', name: 'out' }),
    ] });
    const history = await trainWithSnnl(model, { x, y: tf.tensor1d(y, 'int32') }, { factor: -1, epochs: 2, batchSize: 20 });
    const layers = measureLayers(model, x, y);
    window.result = { losses, epochs: history.length, trainLoss: history[1].train.loss, layers: Object.keys(layers), backend: tf.getBackend() };
  } catch (error) {
    window.result = { error: String(error && error.stack || error) };
  }
})();
`;

describe('the browser entry', () => {
  beforeAll(() => onBackend('cpu'));

  it('bundles with no Node built-ins, runs in headless Chromium, and gives the loss Node gives', async () => {
    const dir = await bundleForBrowser(PROGRAM);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('console', (m) => void (m.type() === 'error' && errors.push(m.text())));
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`file://${join(dir, 'index.html')}`);
      await page.waitForFunction('window.result !== undefined', undefined, { timeout: 60_000 });
      const result = (await page.evaluate('window.result')) as {
        error?: string;
        losses: Record<string, number>;
        epochs: number;
        trainLoss: number;
        layers: string[];
        backend: string;
      };
      expect(result.error).toBeUndefined();
      expect(errors).toEqual([]);
      expect(result.backend).toBe('cpu');
      const node = {
        stable: snnl(features, labels, { temperature: 3 }).dataSync()[0]!,
        cosine: snnl(features, labels, { temperature: 0.5, distance: 'cosine' }).dataSync()[0]!,
        cleverhans: snnl(features, labels, { temperature: 3, preset: 'cleverhans' }).dataSync()[0]!,
      };
      for (const [name, value] of Object.entries(node)) {
        expect(Math.abs(result.losses[name]! - value), name).toBeLessThan(1e-5);
      }
      expect(result.losses['optimal']).toBeLessThanOrEqual(result.losses['stable']! + 1e-6);
      expect(result.epochs).toBe(2);
      expect(Number.isFinite(result.trainLoss)).toBe(true);
      expect(result.layers).toEqual(['hidden', 'out']);
    } finally {
      await browser.close();
    }
  }, 180_000);
});
