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
