/**
 * 2-D pictures of a layer's representation: UMAP (umap-js), seeded so the same run gives the same
 * picture.
 */
import { UMAP } from 'umap-js';
import { seededRandom } from '../random.js';

export function umap2d(rows: number[][], seed: number): number[][] {
  const nNeighbors = Math.min(15, rows.length - 1);
  const umap = new UMAP({ nComponents: 2, nNeighbors, minDist: 0.1, random: seededRandom(seed) });
  return umap.fit(rows);
}

/**
 * Exact t-SNE (van der Maaten & Hinton 2008) to 2-D, for a few thousand points at most (O(n^2) per
 * iteration): Gaussian affinities with each point's bandwidth found by bisection to the given perplexity,
 * symmetrized; Student-t similarities in the map; gradient descent with momentum 0.5 then 0.8, early
 * exaggeration 12 for the first 250 of 1000 iterations, learning rate 200 and per-coordinate gains, as
 * the paper's reference implementation. Seeded: the start is N(0, 1e-4) from `seed`.
 */
export function tsne2d(rows: number[][], seed: number, perplexity = 30, iterations = 1000): number[][] {
  const n = rows.length;
  if (n < 3) return rows.map(() => [0, 0]);
  const d2 = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let s = 0;
      for (let c = 0; c < rows[i]!.length; c++) s += (rows[i]![c]! - rows[j]![c]!) ** 2;
      d2[i * n + j] = d2[j * n + i] = s;
    }
  }
  // Conditional affinities with the bandwidth of each row set by bisection on beta = 1 / (2 sigma^2).
  const target = Math.log(Math.min(perplexity, (n - 1) / 3));
  const p = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    let beta = 1;
    let lo = 0;
    let hi = Infinity;
    let minD = Infinity;
    for (let j = 0; j < n; j++) if (j !== i) minD = Math.min(minD, d2[i * n + j]!);
    for (let step = 0; step < 60; step++) {
      let sum = 0;
      let weighted = 0;
      for (let j = 0; j < n; j++) {
        if (j === i) continue;
        const w = Math.exp(-beta * (d2[i * n + j]! - minD));
        p[i * n + j] = w;
        sum += w;
        weighted += w * (d2[i * n + j]! - minD);
      }
      const entropy = Math.log(sum) + (beta * weighted) / sum;
      for (let j = 0; j < n; j++) p[i * n + j]! /= sum;
      if (Math.abs(entropy - target) < 1e-5) break;
      if (entropy > target) {
        lo = beta;
        beta = hi === Infinity ? beta * 2 : (beta + hi) / 2;
      } else {
        hi = beta;
        beta = (beta + lo) / 2;
      }
    }
  }
  const P = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) P[i * n + j] = Math.max((p[i * n + j]! + p[j * n + i]!) / (2 * n), 1e-12);
  }
  const random = seededRandom(seed);
  const gaussian = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
  const y = Float64Array.from({ length: 2 * n }, () => 1e-2 * gaussian());
  const velocity = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  const q = new Float64Array(n * n);
  const grad = new Float64Array(2 * n);
  for (let it = 0; it < iterations; it++) {
    const exaggeration = it < 250 ? 12 : 1;
    const momentum = it < 250 ? 0.5 : 0.8;
    let sumQ = 0;
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const dx = y[2 * i]! - y[2 * j]!;
        const dy = y[2 * i + 1]! - y[2 * j + 1]!;
        const w = 1 / (1 + dx * dx + dy * dy);
        q[i * n + j] = q[j * n + i] = w;
        sumQ += 2 * w;
      }
    }
    grad.fill(0);
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (i === j) continue;
        const w = q[i * n + j]!;
        const f = 4 * (exaggeration * P[i * n + j]! - w / sumQ) * w;
        grad[2 * i]! += f * (y[2 * i]! - y[2 * j]!);
        grad[2 * i + 1]! += f * (y[2 * i + 1]! - y[2 * j + 1]!);
      }
    }
    for (let k = 0; k < 2 * n; k++) {
      gains[k] = Math.sign(grad[k]!) !== Math.sign(velocity[k]!) ? gains[k]! + 0.2 : Math.max(0.01, gains[k]! * 0.8);
      velocity[k] = momentum * velocity[k]! - 200 * gains[k]! * grad[k]!;
      y[k]! += velocity[k]!;
    }
  }
  return Array.from({ length: n }, (_, i) => [y[2 * i]!, y[2 * i + 1]!]);
}
