/**
 * The toy's page: the frames of both directions side by side, as inline SVG and a PNG.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ToyFrame } from '../experiments/toy.js';
import { writeAtomic } from '../io/atomic.js';
import { framesSpec, svgToPng, toSvg } from './figures.js';

export async function writeToyReport(dir: string, frames: ToyFrame[]): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const rows = frames.flatMap((f) =>
    f.points.map(([x, y], i) => ({
      direction: f.direction === 'disentangle' ? '1. minimize' : '2. maximize',
      step: f.step,
      label: `SNNL ${f.loss.toFixed(2)}`,
      x: x!,
      y: y!,
      class: f.labels[i]!,
    })),
  );
  const svg = await toSvg(
    framesSpec(rows, 'Points from 2-D Gaussians moved by gradient descent on SNNL (the paper\u2019s Figure 1)'),
  );
  writeAtomic(join(dir, 'toy.png'), svgToPng(svg));
  const page = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>snnl toy</title>
<style>body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1000px; }</style></head><body>
<h1>SNNL on a toy: separating and mixing classes</h1>
<p>Each point follows the gradient of its own SNNL term, at the temperature that minimizes SNNL (so the loss cannot change by mere scaling; the cloud is kept at unit scale). First row: minimizing pulls the classes apart. Second row: maximizing mixes them, up to the fully mixed value log((b - 1) / (class size - 1)).</p>
<figure>${svg}</figure></body></html>
`;
  const path = join(dir, 'toy.html');
  writeAtomic(path, page);
  return path;
}
