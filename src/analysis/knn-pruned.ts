/**
 * The pruned ("bounded") exact k-NN search of knn.ts (the method and its rounding are described there): the
 * low-rank index of the training rows, the share of rows its bound passes, and the search itself.
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { KNN_EXACT, KNN_REFINE, ORTHONORMALIZE, type KnnRefineAttrs } from '../kernel-names.js';

import {
  fusedStep,
  PRUNE_DEFAULTS,
  totalRows,
  type Best,
  type FeatureChunks,
  type FeatureMatrix,
  type KnnIndex,
  type KnnOptions,
  type Neighbors,
} from './knn-core.js';

export function canPrune(): boolean {
  const backend = tf.getBackend();
  return [KNN_EXACT, KNN_REFINE, ORTHONORMALIZE].every((name) => tf.getKernel(name, backend) !== undefined);
}

/** Whether a search of `rows` training rows of width `dim` is pruned under these options. */
export function prunes(options: Pick<KnnOptions, 'prune'>, dim: number, rows: number): boolean {
  const mode = options.prune ?? 'auto';
  if (mode === false || !canPrune()) return false;
  return mode === true || (dim >= PRUNE_DEFAULTS.minDim && rows >= PRUNE_DEFAULTS.minRows);
}

/** Rows, p coordinates and a residual-norm interval, and squared norms: [rows, p + 2] and [rows]. */
function boundingRows(x: tf.Tensor2D, basis: tf.Tensor2D, slack: number): [tf.Tensor2D, tf.Tensor1D] {
  return tf.tidy(() => {
    const norms = tf.sum(tf.square(x), 1) as tf.Tensor1D;
    const coords = tf.matMul(x, basis);
    const residual = tf.sub(norms, tf.sum(tf.square(coords), 1));
    const margin = tf.mul(norms, slack);
    const low = tf.sqrt(tf.relu(tf.sub(residual, margin)));
    const high = tf.sqrt(tf.relu(tf.add(residual, margin)));
    return [tf.concat([coords, tf.reshape(low, [-1, 1]), tf.reshape(high, [-1, 1])], 1) as tf.Tensor2D, norms];
  });
}

/**
 * The pruned search's index of the training chunks: a basis of `rank` columns from two rounds of subspace
 * iteration on up to PRUNE_DEFAULTS.sample rows spread over the set (seeded: the same index for the same
 * rows), then every row's bounding row and squared norm. Needs the backend's kernels (canPrune).
 */
export function buildKnnIndex(
  train: FeatureChunks,
  options: { rank?: number | undefined; seed?: number } = {},
): KnnIndex {
  const n = totalRows(train);
  const dim = train[0]?.dim ?? 0;
  const rank = Math.min(options.rank ?? PRUNE_DEFAULTS.rank, dim);
  if (!Number.isInteger(rank) || rank < 1)
    throw new InputError('pruneRank', `must be a whole number of at least 1, got ${rank}`);
  const s = Math.min(n, PRUNE_DEFAULTS.sample);
  const sample = spreadRows(train, dim, s);
  const slack = 4 * (dim + rank) * 2 ** -24;
  const basis = tf.tidy(() => {
    const x = tf.tensor2d(sample, [s, dim]);
    let y = tf.randomNormal([dim, rank], 0, 1, 'float32', options.seed ?? 1) as tf.Tensor2D;
    for (let round = 0; round < 2; round++) {
      const grown = tf.matMul(x, tf.matMul(x, y), true, false);
      y = tf.engine().runKernel(ORTHONORMALIZE, { x: grown }) as tf.Tensor2D;
    }
    return y;
  });
  try {
    const bounds: Float32Array[] = [];
    const norms: Float32Array[] = [];
    let finite = true;
    for (const c of train) {
      const t = tf.tensor2d(c.values.subarray(0, c.rows * dim), [c.rows, dim]);
      const [b, nm] = boundingRows(t, basis, slack);
      bounds.push(b.dataSync() as Float32Array);
      const values = nm.dataSync() as Float32Array;
      finite &&= values.every(Number.isFinite);
      norms.push(values);
      tf.dispose([t, b, nm]);
    }
    return { dim, rank, basis: basis.dataSync() as Float32Array, bounds, norms, slack, finite };
  } finally {
    basis.dispose();
  }
}

/**
 * An estimate of the share of training rows the bound lets through to an exact distance: 64 rows of the
 * first chunk act as queries against that chunk (themselves left out), with the k-th nearest scaled to the
 * chunk's size (k x chunk rows / all rows, at least 1).
 */
export function passShare(train: FeatureChunks, index: KnnIndex, k: number): number {
  const first = train[0]!;
  const rows = first.rows;
  if (rows < 2) return 1;
  const n = totalRows(train);
  const probes = Math.min(64, rows);
  const nearest = Math.min(rows - 1, Math.max(1, Math.ceil((k * rows) / n)));
  const at = Int32Array.from({ length: probes }, (_, i) => Math.floor((i * rows) / probes));
  return tf.tidy(() => {
    const x = tf.tensor2d(first.values.subarray(0, rows * first.dim), [rows, first.dim]);
    const xn = tf.tensor1d(index.norms[0]!);
    const xb = tf.tensor2d(index.bounds[0]!, [rows, index.rank + 2]);
    const q = tf.gather(x, at);
    const qn = tf.gather(xn, at);
    const qb = tf.gather(xb, at);
    const self = tf.mul(tf.oneHot(at, rows), 1e30);
    const exact = tf.add(
      tf.relu(tf.sub(tf.add(tf.reshape(qn, [-1, 1]), xn), tf.mul(tf.matMul(q, x, false, true), 2))),
      self,
    );
    const limit = tf.slice(tf.neg(tf.topk(tf.neg(exact), nearest).values), [0, nearest - 1], [-1, 1]);
    const coords = (b: tf.Tensor2D) => tf.slice(b, [0, 0], [-1, index.rank]);
    const column = (b: tf.Tensor2D, c: number) => tf.slice(b, [0, index.rank + c], [-1, 1]);
    const projected = tf.sub(
      tf.add(tf.sum(tf.square(coords(qb)), 1, true), tf.reshape(tf.sum(tf.square(coords(xb)), 1), [1, -1])),
      tf.mul(tf.matMul(coords(qb), coords(xb), false, true), 2),
    );
    const gap = tf.relu(
      tf.maximum(
        tf.sub(column(qb, 0), tf.transpose(column(xb, 1))),
        tf.sub(tf.transpose(column(xb, 0)), column(qb, 1)),
      ),
    );
    const lower = tf.sub(tf.add(projected, tf.square(gap)), tf.mul(tf.add(tf.reshape(qn, [-1, 1]), xn), index.slack));
    const through = tf.sub(tf.sum(tf.cast(tf.lessEqual(lower, limit), 'float32')), probes);
    return through.dataSync()[0]! / (probes * (rows - 1));
  });
}

/**
 * `count` rows spread evenly over the chunks (row floor(i n / count) for i < count, n the rows in all), each
 * cut to its first `keep` values, in one [count, keep] array.
 */
function spreadRows(chunks: FeatureChunks, keep: number, count: number): Float32Array {
  const n = totalRows(chunks);
  const out = new Float32Array(count * keep);
  let chunk = 0;
  let chunkStart = 0;
  for (let i = 0; i < count; i++) {
    const row = Math.floor((i * n) / count);
    while (row >= chunkStart + chunks[chunk]!.rows) chunkStart += chunks[chunk++]!.rows;
    const at = (row - chunkStart) * chunks[chunk]!.dim;
    out.set(chunks[chunk]!.values.subarray(at, at + keep), i * keep);
  }
  return out;
}

/** Pivots for ordering queries: training rows spread over the set. */
const PIVOTS = 256;

/**
 * An order of the queries that puts similar ones side by side: by the nearest of PIVOTS training rows
 * spread over the set (in the basis's coordinates), then by the distance to it. order[i] = the query at i.
 */
function similarOrder(queries: FeatureMatrix, index: KnnIndex, basis: tf.Tensor2D, queryChunk: number): Int32Array {
  const { dim, rank } = index;
  const n = index.bounds.reduce((s, b) => s + b.length / (rank + 2), 0);
  const count = Math.min(PIVOTS, n);
  const pivots = spreadRows(
    index.bounds.map((values) => ({ rows: values.length / (rank + 2), dim: rank + 2, values })),
    rank,
    count,
  );
  const cell = new Int32Array(queries.rows);
  const away = new Float32Array(queries.rows);
  tf.tidy(() => {
    const p = tf.tensor2d(pivots, [count, rank]);
    const pNorms = tf.reshape(tf.sum(tf.square(p), 1), [1, -1]);
    for (let start = 0; start < queries.rows; start += queryChunk) {
      const rows = Math.min(queryChunk, queries.rows - start);
      tf.tidy(() => {
        const x = tf.tensor2d(queries.values.subarray(start * dim, (start + rows) * dim), [rows, dim]);
        const coords = tf.matMul(x, basis);
        const d = tf.sub(
          tf.add(tf.sum(tf.square(coords), 1, true), pNorms),
          tf.mul(tf.matMul(coords, p, false, true), 2),
        );
        cell.set(tf.argMin(d, 1).dataSync(), start);
        away.set(tf.min(d, 1).dataSync(), start);
      });
    }
  });
  return Int32Array.from({ length: queries.rows }, (_, i) => i).sort(
    (a, b) => cell[a]! - cell[b]! || away[a]! - away[b]! || a - b,
  );
}

/**
 * The pruned search (see the top of the file); undefined where a query row is not finite (the plain
 * search then ranks its NaN distances last, as it always does), or where a list came out short.
 */
export function boundedSearch(
  train: FeatureChunks,
  queries: FeatureMatrix,
  index: KnnIndex,
  k: number,
  queryChunk: number,
  onProgress: KnnOptions['onProgress'],
): Neighbors | undefined {
  const n = totalRows(train);
  const { dim, rank } = index;
  const basis = tf.tensor2d(index.basis, [dim, rank]);
  type Part = {
    start: number;
    rows: number;
    x: tf.Tensor2D;
    norms: tf.Tensor1D;
    bounds: tf.Tensor2D;
    guide: tf.Tensor2D;
    guideNorms: tf.Tensor1D;
    best?: Best;
    limits?: tf.Tensor1D;
  };
  const parts: Part[] = [];
  let exact: tf.Tensor2D[] = [];
  // The first pass ranks rows by the squared distance of [P x, residual low]: a guess at the nearest.
  const guideOf = (bounds: tf.Tensor2D) => tf.slice(bounds, [0, 0], [-1, rank + 1]) as tf.Tensor2D;
  const held = () =>
    parts.flatMap((p) => [p.x, p.norms, p.bounds, p.guide, p.guideNorms, p.limits, p.best?.distances, p.best?.indices]);
  try {
    // Similar queries side by side (the refine kernel reads a training row once for a block of them).
    const order = similarOrder(queries, index, basis, queryChunk);
    const sorted = new Float32Array(queries.rows * dim);
    order.forEach((from, to) => sorted.set(queries.values.subarray(from * dim, (from + 1) * dim), to * dim));
    for (let start = 0; start < queries.rows; start += queryChunk) {
      const rows = Math.min(queryChunk, queries.rows - start);
      const x = tf.tensor2d(sorted.subarray(start * dim, (start + rows) * dim), [rows, dim]);
      const [bounds, norms] = boundingRows(x, basis, index.slack);
      const guide = guideOf(bounds);
      parts.push({ start, rows, x, norms, bounds, guide, guideNorms: tf.tidy(() => tf.sum(tf.square(guide), 1)) });
    }
    if (!parts.every((p) => p.norms.dataSync().every(Number.isFinite))) return undefined;

    // Pass 1: the k rows of smallest guide distance (the training side's bounds only, no features).
    let offset = 0;
    train.forEach((c, i) => {
      const tb = tf.tensor2d(index.bounds[i]!, [c.rows, rank + 2]);
      const tGuide = guideOf(tb);
      const tGuideNorms = tf.tidy(() => tf.sum(tf.square(tGuide), 1) as tf.Tensor1D);
      for (const part of parts) {
        const merged = fusedStep(part.guide, part.guideNorms, tGuide, tGuideNorms, part.best, k, offset);
        if (part.best) tf.dispose([part.best.distances, part.best.indices]);
        part.best = merged;
      }
      tf.dispose([tb, tGuide, tGuideNorms]);
      offset += c.rows;
    });
    // Their exact distances, chunk by chunk; the largest bounds the k-th nearest from above.
    exact = parts.map((p) => tf.zeros([p.rows, k]) as tf.Tensor2D);
    offset = 0;
    train.forEach((c, i) => {
      const t = tf.tensor2d(c.values.subarray(0, c.rows * dim), [c.rows, dim]);
      const tn = tf.tensor1d(index.norms[i]!);
      parts.forEach((part, p) => {
        const next = tf.engine().runKernel(
          KNN_EXACT,
          {
            queries: part.x,
            queryNorms: part.norms,
            train: t,
            trainNorms: tn,
            indices: part.best!.indices,
            distances: exact[p]!,
          },
          { offset } as unknown as tf.NamedAttrMap,
        ) as tf.Tensor2D;
        exact[p]!.dispose();
        exact[p] = next;
      });
      tf.dispose([t, tn]);
      offset += c.rows;
      onProgress?.(offset, 2 * n);
    });
    for (const [p, part] of parts.entries()) {
      part.limits = tf.max(exact[p]!, 1) as tf.Tensor1D;
      tf.dispose([part.best!.distances, part.best!.indices]);
      delete part.best;
    }
    tf.dispose(exact);
    exact = [];

    // Pass 2: exact distances of the rows the bound cannot rule out, merged into each query's k best.
    let exactPairs = queries.rows * k;
    offset = 0;
    train.forEach((c, i) => {
      const t = tf.tensor2d(c.values.subarray(0, c.rows * dim), [c.rows, dim]);
      const tn = tf.tensor1d(index.norms[i]!);
      const tb = tf.tensor2d(index.bounds[i]!, [c.rows, rank + 2]);
      for (const part of parts) {
        const best = part.best ?? {
          distances: tf.zeros([part.rows, 0]) as tf.Tensor2D,
          indices: tf.zeros([part.rows, 0], 'int32') as tf.Tensor2D,
        };
        const attrs: KnnRefineAttrs = { k, offset, slack: index.slack };
        const [distances, indices, counts] = tf.engine().runKernel(
          KNN_REFINE,
          {
            queries: part.x,
            queryNorms: part.norms,
            queryBounds: part.bounds,
            train: t,
            trainNorms: tn,
            trainBounds: tb,
            limits: part.limits!,
            bestDistances: best.distances,
            bestIndices: best.indices,
          },
          attrs as unknown as tf.NamedAttrMap,
        ) as tf.Tensor[];
        for (const v of counts!.dataSync()) exactPairs += v;
        tf.dispose([best.distances, best.indices, counts!]);
        part.best = { distances: distances as tf.Tensor2D, indices: indices as tf.Tensor2D };
      }
      tf.dispose([t, tn, tb]);
      offset += c.rows;
      onProgress?.(n + offset, 2 * n);
    });
    const indices = new Int32Array(queries.rows * k);
    const distances = new Float32Array(queries.rows * k);
    for (const part of parts) {
      const partIndices = part.best!.indices.dataSync();
      const partDistances = part.best!.distances.dataSync();
      for (let i = 0; i < part.rows; i++) {
        const to = order[part.start + i]! * k;
        indices.set(partIndices.subarray(i * k, (i + 1) * k), to);
        distances.set(partDistances.subarray(i * k, (i + 1) * k), to);
      }
    }
    // Every list is full: the rows that fixed each query's limit always pass its bound. (A free place left
    // would mean rounding beyond the margin; the plain search then answers.)
    if (indices.some((i) => i < 0)) return undefined;
    return { k, count: queries.rows, indices, distances, exactPairs };
  } finally {
    tf.dispose([...held(), ...exact].filter((t) => t !== undefined) as tf.Tensor[]);
    basis.dispose();
  }
}
