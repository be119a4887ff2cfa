/**
 * The browser entry on tfjs's webgl backend (headless Chromium, software GL: SwiftShader), against the cpu
 * backend in the same page: the loss in every distance and form, its gradient, the optimal temperature,
 * training and measureLayers. webgpu is checked where the browser offers it. Skipped where Debian's
 * chromium is missing; SNNL_REQUIRE_ALL=1 (CI) makes that a failure.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { describe, expect } from 'vitest';
import { needs } from './helpers.js';
import { bundleForBrowser, CHROMIUM } from './browser-helpers.js';
import { normalMatrix, seeded } from './oracle.js';

const it = needs(existsSync(CHROMIUM), 'Debian package chromium is not installed');

/** Software WebGL: SwiftShader through ANGLE, no GPU process sandbox, no network. */
const WEBGL_ARGS = [
  '--no-sandbox',
  '--use-angle=swiftshader',
  '--enable-unsafe-swiftshader',
  '--ignore-gpu-blocklist',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

const b = 48;
const d = 10;
const features = normalMatrix(b, d, seeded(57));
const labels = Array.from({ length: b }, (_, i) => (i * 5) % 4);

const PROGRAM = `
import * as tf from '@tensorflow/tfjs';
import { snnl, measureLayers, trainWithSnnl, optimalTemperature } from 'snnl';
async function figures(backend) {
  await tf.setBackend(backend);
  await tf.ready();
  const x = tf.tensor2d(${JSON.stringify(features)});
  const y = ${JSON.stringify(labels)};
  const losses = {};
  for (const [name, options] of Object.entries({
    stable: { temperature: 3 },
    euclidean: { temperature: 2, distance: 'euclidean' },
    cosine: { temperature: 0.5, distance: 'cosine' },
    cleverhans: { temperature: 3, preset: 'cleverhans' },
    ptSnnl: { temperature: 0.5, preset: 'pt-snnl', distance: 'cosine' },
  })) losses[name] = snnl(x, y, options).dataSync()[0];
  const gradient = Array.from(tf.grad((h) => snnl(h, y, { temperature: 3 }))(x).dataSync());
  const optimal = optimalTemperature(x, y);
  const model = tf.sequential({ layers: [
    tf.layers.dense({ inputShape: [${d}], units: 16, activation: 'tanh', name: 'hidden',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
    tf.layers.dense({ units: 4, activation: 'softmax', name: 'out',
      kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
  ] });
  const history = await trainWithSnnl(model, { x, y: tf.tensor1d(y, 'int32') },
    { factor: -1, epochs: 2, batchSize: 24, optimizer: tf.train.sgd(0.05) });
  const layers = measureLayers(model, x, y, { temperature: 2 });
  const backendUsed = tf.getBackend();
  tf.disposeVariables();
  x.dispose();
  return { backend: backendUsed, losses, gradient, optimal, trainLoss: history.map((h) => h.train.loss),
    hidden: layers.hidden };
}
(async () => {
  try {
    const webgl = await figures('webgl');
    const cpu = await figures('cpu');
    let webgpu = 'navigator.gpu is absent';
    if (navigator.gpu) webgpu = (await navigator.gpu.requestAdapter()) ? 'offered' : 'no adapter';
    window.result = { webgl, cpu, webgpu };
  } catch (error) {
    window.result = { error: String(error && error.stack || error) };
  }
})();
`;

const relative = (a: number, b: number) => Math.abs(a - b) / Math.max(1e-12, Math.abs(b));

describe('the browser entry on webgl', () => {
  it('gives the cpu backend figures within 1e-4 relative: loss, gradient, optimal T, training, measureLayers', async () => {
    const dir = await bundleForBrowser(PROGRAM);
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: WEBGL_ARGS });
    try {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(String(e)));
      await page.goto(`file://${join(dir, 'index.html')}`);
      await page.waitForFunction('window.result !== undefined', undefined, { timeout: 150_000 });
      type Figures = {
        backend: string;
        losses: Record<string, number>;
        gradient: number[];
        optimal: { temperature: number; loss: number };
        trainLoss: number[];
        hidden: { loss: number; optimalLoss: number; precisionAt1: number };
      };
      const result = (await page.evaluate('window.result')) as {
        error?: string;
        webgl: Figures;
        cpu: Figures;
        webgpu: string;
      };
      expect(result.error).toBeUndefined();
      expect(errors).toEqual([]);
      const { webgl, cpu } = result;
      expect(webgl.backend).toBe('webgl');
      expect(cpu.backend).toBe('cpu');
      for (const name of Object.keys(cpu.losses))
        expect(relative(webgl.losses[name]!, cpu.losses[name]!), name).toBeLessThan(1e-4);
      const scale = Math.max(...cpu.gradient.map(Math.abs));
      const worst = Math.max(...webgl.gradient.map((g, i) => Math.abs(g - cpu.gradient[i]!)));
      expect(worst / scale).toBeLessThan(1e-4);
      expect(relative(webgl.optimal.loss, cpu.optimal.loss)).toBeLessThan(1e-4);
      webgl.trainLoss.forEach((loss, k) =>
        expect(relative(loss, cpu.trainLoss[k]!), `epoch ${k + 1}`).toBeLessThan(1e-4),
      );
      expect(relative(webgl.hidden.loss, cpu.hidden.loss)).toBeLessThan(1e-4);
      expect(relative(webgl.hidden.optimalLoss, cpu.hidden.optimalLoss)).toBeLessThan(1e-4);
      expect(webgl.hidden.precisionAt1).toBe(cpu.hidden.precisionAt1);
      console.log(`webgpu in this Chromium: ${result.webgpu}`);
    } finally {
      await browser.close();
    }
  }, 240_000);
});
