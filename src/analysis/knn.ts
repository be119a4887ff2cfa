/**
 * Exact k nearest neighbours by Euclidean distance, on the compute engine: squared distances of a chunk
 * of queries to a chunk of training points by one matrix product (|q|^2 + |t|^2 - 2 q.t), the k smallest
 * of each row by TopK, merged with the best found so far. Training points come in chunks (the outer loop:
 * each is uploaded once) and queries in chunks (the inner loop): the distances in memory at once are one
 * chunk by one chunk, never n_train x n_query (all queries' features and their k best stay on the backend
 * for the whole search). Among equal distances the lower training index comes first (TopK keeps the
 * lower position first, and every merge puts earlier chunks first).
 *
 * The pruned ("bounded") search, on backends with its kernels (native), finds the same neighbours with far
 * fewer distances: for wide features (a convolution's 12,544 values) almost every training row is ruled out
 * by a cheap lower bound. An orthonormal basis P of p columns (p = 256) spanning most of the training
 * features' variance is found by two rounds of subspace iteration on a sample of rows; every row x is
 * summarized by its p coordinates P x and the norm of its residual x - P'P x. By Pythagoras, |q - t|^2 =
 * |P q - P t|^2 + |residual(q) - residual(t)|^2 >= |P q - P t|^2 + (|res q| - |res t|)^2: a lower bound
 * computed by a product of width p instead of d. Then, per query:
 *   1. the k rows of smallest lower bound, and their exact distances: the largest is an upper bound of the
 *      k-th nearest distance;
 *   2. every training row whose lower bound is within that limit (or the k-th of the list found so far, if
 *      smaller) gets its exact distance and is merged as in the plain search; no other row can be among the
 *      k nearest.
 * Rounding: the bound is reduced by 4 (d + p) 2^-24 (|q|^2 + |t|^2) before it rules a row out (the
 * float32 worst case of the distance formula, far above the rounding seen in practice), and the residual
 * norms are intervals widened by as much; so the pruned search returns the neighbours the plain search
 * returns, up to the plain search's own float32 rounding of the distances (the exact distances are computed
 * by a different summation order, which can swap two rows whose distances differ by less than that
 * rounding, about 1e-7 (|q|^2 + |t|^2) or more: where the norms are large against the distances, as in the
 * test's low-rank data, the digits lost to cancellation go with it).
 */
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import {
  KNN_EXACT,
  KNN_MERGE,
  KNN_REFINE,
  ORTHONORMALIZE,
  type KnnMergeAttrs,
  type KnnRefineAttrs,
} from '../kernel-names.js';

/** Row-major features: `rows` rows of `dim` values, held in JavaScript memory (not on the backend). */
export interface FeatureMatrix {
  rows: number;
  dim: number;
  values: Float32Array;
}

/** Training features in row chunks (each a FeatureMatrix of the same `dim`), in index order. */
export type FeatureChunks = FeatureMatrix[];

export interface Neighbors {
  k: number;
  /** Number of queries. */
  count: number;
  /** [count, k] training indices, nearest first. */
  indices: Int32Array;
  /** [count, k] squared Euclidean distances (clamped at 0), nearest first. */
  distances: Float32Array;
  /** Exact distances computed: count x training rows in the plain search, far fewer when pruned. */
  exactPairs: number;
}

export interface KnnOptions {
  k: number;
  /** Queries per product (default 2048). */
  queryChunk?: number;
  /** Called after each training chunk with the rows done so far (the pruned search counts its two passes). */
  onProgress?: (done: number, total: number) => void;
  /**
   * The pruned search: `auto` (default) where the backend has its kernels and the features are wide and
   * many enough to gain (PRUNE_DEFAULTS), true wherever the backend has its kernels, false never.
   */
  prune?: boolean | 'auto';
  /** Columns of the bounding basis (default 256; at most the feature width). */
  pruneRank?: number;
  /** The training chunks' bounding index, built before by buildKnnIndex (else built when pruning). */
  index?: KnnIndex;
}

/**
 * The bounding basis's default rank and the sample it is found from; the sizes from which `auto` prunes,
 * and the largest estimated share of rows let through by the bound (passShare) at which it still does.
 */
export const PRUNE_DEFAULTS = { rank: 256, sample: 4096, minDim: 1024, minRows: 8192, maxShare: 0.05 };

/** What the pruned search needs of the training rows, computed once (JavaScript memory, no tensors). */
export interface KnnIndex {
  dim: number;
  /** Columns p of the basis. */
  rank: number;
  /** [dim, p] orthonormal columns. */
  basis: Float32Array;
  /** Per training chunk: [rows, p + 2] bounding rows ([P x, residual norm low, high]). */
  bounds: Float32Array[];
  /** Per training chunk: [rows] squared norms, as the plain search computes them. */
  norms: Float32Array[];
  /** Rounding slack: 4 (d + p) 2^-24. */
  slack: number;
  /** Whether every norm is finite (a row with NaN or infinity makes the search fall back to the plain one). */
  finite: boolean;
}

export function totalRows(chunks: FeatureChunks): number {
  return chunks.reduce((n, c) => n + c.rows, 0);
}

/** The k nearest rows of `train` to each row of `queries`. */
export function nearestNeighbors(train: FeatureChunks, queries: FeatureMatrix, options: KnnOptions): Neighbors {
  const { k } = options;
  const n = totalRows(train);
  if (!Number.isInteger(k) || k < 1) throw new InputError('k', `must be a whole number of at least 1, got ${k}`);
  if (k > n) throw new InputError('k', `is ${k}, larger than the ${n} training points`);
  for (const chunk of train) {
    if (chunk.dim !== queries.dim)
      throw new InputError('features', `training rows have ${chunk.dim} values, queries ${queries.dim}`);
  }
  const queryChunk = Math.max(1, options.queryChunk ?? 2048);
  if (prunes(options, queries.dim, n)) {
    const index = options.index ?? buildKnnIndex(train, { rank: options.pruneRank });
    if (index.dim !== queries.dim)
      throw new InputError('index', `has ${index.dim} values per row, queries ${queries.dim}`);
    // `auto` prunes only where the bound rules out most rows (features without low-rank structure, such as
    // noise, would pay for exact distances one pair at a time, about ten times a product's cost per pair).
    const gains = options.prune === true || passShare(train, index, k) <= PRUNE_DEFAULTS.maxShare;
    if (index.finite && gains) {
      const found = boundedSearch(train, queries, index, k, queryChunk, options.onProgress);
      if (found) return found;
    }
  }
  const parts: Array<{ start: number; rows: number; x: tf.Tensor2D; norms: tf.Tensor1D }> = [];
  for (let start = 0; start < queries.rows; start += queryChunk) {
    const rows = Math.min(queryChunk, queries.rows - start);
    const x = tf.tensor2d(queries.values.subarray(start * queries.dim, (start + rows) * queries.dim), [
      rows,
      queries.dim,
    ]);
    parts.push({ start, rows, x, norms: tf.tidy(() => tf.sum(tf.square(x), 1) as tf.Tensor1D) });
  }
  // The best so far for each query part: squared distances (ascending) and training indices.
  const best: Array<Best | undefined> = parts.map(() => undefined);
  const step = tf.getKernel(KNN_MERGE, tf.getBackend()) ? fusedStep : composedStep;
  try {
    let offset = 0;
    for (const chunk of train) {
      if (chunk.rows === 0) continue;
      const t = tf.tensor2d(chunk.values.subarray(0, chunk.rows * chunk.dim), [chunk.rows, chunk.dim]);
      const tNorms = tf.tidy(() => tf.sum(tf.square(t), 1) as tf.Tensor1D);
      parts.forEach((part, p) => {
        const merged = step(part.x, part.norms, t, tNorms, best[p], k, offset);
        if (best[p]) tf.dispose([best[p]!.distances, best[p]!.indices]);
        best[p] = merged;
      });
      tf.dispose([t, tNorms]);
      offset += chunk.rows;
      options.onProgress?.(offset, n);
    }
    const indices = new Int32Array(queries.rows * k);
    const distances = new Float32Array(queries.rows * k);
    parts.forEach((part, p) => {
      indices.set(best[p]!.indices.dataSync(), part.start * k);
      distances.set(best[p]!.distances.dataSync(), part.start * k);
    });
    return { k, count: queries.rows, indices, distances, exactPairs: queries.rows * n };
  } finally {
    for (const part of parts) tf.dispose([part.x, part.norms]);
    for (const b of best) if (b) tf.dispose([b.distances, b.indices]);
  }
}

type Best = { distances: tf.Tensor2D; indices: tf.Tensor2D };

/** One search step by the backend's fused kernel (native). */
function fusedStep(
  q: tf.Tensor2D,
  qNorms: tf.Tensor1D,
  t: tf.Tensor2D,
  tNorms: tf.Tensor1D,
  previous: Best | undefined,
  k: number,
  offset: number,
): Best {
  const attrs: KnnMergeAttrs = { k, offset };
  const best = previous ?? {
    distances: tf.zeros([q.shape[0], 0]) as tf.Tensor2D,
    indices: tf.zeros([q.shape[0], 0], 'int32') as tf.Tensor2D,
  };
  const [distances, indices] = tf.engine().runKernel(
    KNN_MERGE,
    {
      queries: q,
      queryNorms: qNorms,
      train: t,
      trainNorms: tNorms,
      bestDistances: best.distances,
      bestIndices: best.indices,
    },
    attrs as unknown as tf.NamedAttrMap,
  ) as tf.Tensor2D[];
  if (previous === undefined) tf.dispose([best.distances, best.indices]);
  return { distances: distances!, indices: indices! };
}

/**
 * The same step composed of tfjs ops: distances by MatMul, the k smallest of the chunk by TopK (of the
 * negated distances), then TopK again over the old list and the chunk's, the old list first, so that
 * equal distances keep the lower training index.
 */
function composedStep(
  q: tf.Tensor2D,
  qNorms: tf.Tensor1D,
  t: tf.Tensor2D,
  tNorms: tf.Tensor1D,
  best: Best | undefined,
  k: number,
  offset: number,
): Best {
  return tf.tidy(() => {
    const products = tf.matMul(q, t, false, true);
    const squared = tf.relu(
      tf.sub(tf.add(tf.reshape(qNorms, [-1, 1]), tf.reshape(tNorms, [1, -1])), tf.mul(products, 2)),
    );
    const top = tf.topk(tf.neg(squared), Math.min(k, t.shape[0]));
    const chunkIndices = tf.add(top.indices, tf.scalar(offset, 'int32'));
    if (best === undefined)
      return { distances: tf.neg(top.values) as tf.Tensor2D, indices: chunkIndices as tf.Tensor2D };
    const values = tf.concat([tf.neg(best.distances), top.values], 1);
    const indices = tf.concat([best.indices, chunkIndices], 1);
    const width = values.shape[1]!;
    const kept = tf.topk(values, Math.min(k, width));
    // The kept positions as flat indices (wasm's GatherV2 with batchDims reads out of bounds).
    const rows = tf.reshape(tf.mul(tf.range(0, q.shape[0], 1, 'int32'), tf.scalar(width, 'int32')), [-1, 1]);
    const flat = tf.add(kept.indices, rows);
    return {
      distances: tf.neg(kept.values) as tf.Tensor2D,
      indices: tf.reshape(
        tf.gather(tf.reshape(indices, [-1]), flat),
        kept.indices.shape as [number, number],
      ) as tf.Tensor2D,
    };
  });
}

/** Whether the backend in use has the pruned search's kernels. */
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
function boundedSearch(
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
