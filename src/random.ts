/**
 * Seeded randomness, in one place. A run has one seed; each use of randomness draws from its own stream,
 * derived from that seed by a named rule here (never an offset written where it is used), so that adding a
 * new use cannot shift the numbers an existing one sees. The rules are those the committed results were made
 * with: changing one changes every run's shuffles or weights.
 */

/** A seeded generator (mulberry32): the same seed gives the same numbers on every machine. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A permutation of 0..n-1 (Fisher-Yates). */
export function permutation(n: number, random: () => number): Int32Array {
  const order = Int32Array.from({ length: n }, (_, k) => k);
  for (let k = n - 1; k > 0; k--) {
    const j = Math.floor(random() * (k + 1));
    [order[k], order[j]] = [order[j]!, order[k]!];
  }
  return order;
}

/** The seed of each stream of a run, from the run's seed. */
export const STREAMS = {
  /** The shuffle of the training split in epoch `epoch` (0-based): any epoch can be replayed on its own. */
  shuffle: (seed: number, epoch: number) => seed * 1000003 + epoch,
  /** Which test images the per-layer entanglement is measured on. */
  evaluationSample: (seed: number) => seed + 77,
  /** Which training examples a run on a subset keeps. */
  trainSubset: (seed: number) => seed + 31,
  /** The first seed of the weight initializers (each layer's tensor takes the next one). */
  weights: (seed: number) => seed * 7919 + 1,
} as const;

/** The generator of one named stream of a run. */
export function stream(name: Exclude<keyof typeof STREAMS, 'shuffle' | 'weights'>, seed: number): () => number {
  return seededRandom(STREAMS[name](seed));
}
