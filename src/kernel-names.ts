/**
 * snnl's kernels as data: every kernel name snnl adds to TensorFlow.js, its inputs and attributes, and
 * the numeric codes the native addon (native/snnl_native.cc) uses for the ops it runs. This is the one
 * place they are declared; the loss and the optimizer run these kernels by name, each backend registers
 * its implementations (src/engine/<backend>/register.ts), and the native addon reports its own codes at
 * load, which src/engine/native/addon.ts checks against these tables. docs/engine.md says how to add one.
 */

/** The fused SNNL forward: (x [b, d] float32, labels [b] int32) -> [rowLoss [b], K [b, b]]. */
export const SNNL_ROWS = 'SnnlFusedRows';
/** The fused SNNL backward: (x, K, weights [b]) -> dLoss/dx [b, d]. */
export const SNNL_ROWS_GRAD = 'SnnlFusedRowsGrad';
/**
 * SNNL at many temperatures, without its gradient, in blocks of rows (memory set by the block, not b x b):
 * (x [b, d] float32, labels [b] int32, weights [b] float32) -> [nT, 3] float32: for each temperature T,
 * sum_i w_i l_i and (with `derivatives`, else 0) its first and second derivatives with respect to log T.
 * Attributes: SnnlSweepAttrs.
 * src/loss/sweep.ts composes the loss alone from tfjs ops on backends without it.
 */
export const SNNL_SWEEP = 'SnnlSweep';
/** The smallest positive and the largest distance between distinct rows: (x [b, d]) -> [2] float32. */
export const SNNL_DISTANCE_RANGE = 'SnnlDistanceRange';
export interface SnnlSweepAttrs {
  distance: KernelDistance;
  /** < 0: the log-sum-exp formula; otherwise the reference formula's epsilon. */
  epsilon: number;
  temperatures: number[];
  /** Rows per block; 0: chosen by the kernel from memory. */
  blockRows: number;
  derivatives: boolean;
}
/** One Adam update of a variable: (value, m, v, gradient) -> [value', m', v']. */
export const FUSED_ADAM = 'SnnlFusedAdam';
/**
 * One step of the exact k-NN search: (queries [m, d], queryNorms [m], train [c, d], trainNorms [c],
 * bestDistances [m, k'], bestIndices [m, k'] int32) -> the k best [distances [m, k], indices [m, k]] of the
 * old list and this chunk (squared Euclidean, nearest first, ties to the lower index). Attributes:
 * k, and offset (the training index of the chunk's first row). src/analysis/knn.ts composes the same
 * step from MatMul and TopK on backends without it.
 */
export const KNN_MERGE = 'SnnlKnnMerge';
export interface KnnMergeAttrs {
  k: number;
  offset: number;
}

/**
 * The pruned k-NN search's kernels (src/analysis/knn.ts, "bounded search"); backends without them run
 * the plain search.
 * - KNN_EXACT: (queries [m, d], queryNorms [m], train [c, d], trainNorms [c], indices [m, w] int32,
 *   distances [m, w]) -> distances [m, w]: the exact squared distance of each query to each of its w
 *   candidates that lies in this chunk (attribute offset: the chunk's first training index), the input's
 *   value for the others.
 * - KNN_REFINE: (queries, queryNorms, queryBounds [m, p + 2], train, trainNorms, trainBounds [c, p + 2],
 *   limits [m], bestDistances [m, k'], bestIndices [m, k']) -> [distances [m, k], indices [m, k], counts [m]
 *   int32]: KNN_MERGE's step, except that a training row whose lower bound less slack * (|q|^2 + |t|^2)
 *   exceeds min(limits, the full list's k-th) is ruled out without its exact distance; the list is always
 *   k wide (free places: distance infinity, index -1). Bounds rows are
 *   [P x, rLow, rHigh] (coordinates in an orthonormal basis P of p columns, and an interval holding the
 *   norm of the residual x - P'P x); the lower bound is |P q - P t|^2 + (gap between the intervals)^2.
 *   counts: exact distances computed per query. Attributes: k, offset, slack.
 * - ORTHONORMALIZE: (x [rows, cols], rows >= cols) -> an orthonormal basis of its columns [rows, cols].
 */
export const KNN_EXACT = 'SnnlKnnExact';
export const KNN_REFINE = 'SnnlKnnRefine';
export const ORTHONORMALIZE = 'SnnlOrthonormalize';
export interface KnnRefineAttrs {
  k: number;
  offset: number;
  slack: number;
}

/** ReLU's gradient in one pass: (dy, x) -> dy * step(x). */
export const RELU_GRAD = 'SnnlReluGrad';

/** The distances the fused SNNL kernels compute, with their codes in the native addon. */
export const DISTANCE_CODES = { 'squared-euclidean': 0, euclidean: 1, cosine: 2 } as const;
export type KernelDistance = keyof typeof DISTANCE_CODES;

export interface SnnlFusedAttrs {
  distance: KernelDistance;
  temperature: number;
  /** < 0: the log-sum-exp formula; otherwise the reference formula's epsilon. */
  epsilon: number;
}

export interface FusedAdamAttrs {
  beta1: number;
  beta2: number;
  learningRate: number;
  epsilon: number;
  /** 1 - beta1^t and 1 - beta2^t for this step t (counted from 1). */
  correction1: number;
  correction2: number;
}

/** The inputs of FUSED_ADAM, in the order its kernels read them. */
export const FUSED_ADAM_INPUTS = ['value', 'm', 'v', 'gradient'] as const;

/**
 * The codes of the native addon's generic ops, keyed by the tfjs kernel each one runs (activations by
 * the fused matMul's activation name). The addon's `codes()` returns the same tables from its C++ enums.
 */
export const NATIVE_CODES = {
  unary: {
    Relu: 0,
    Neg: 1,
    Step: 2,
    Square: 3,
    Exp: 4,
    Log: 5,
    Sqrt: 6,
    Sigmoid: 7,
    Tanh: 8,
    Abs: 9,
    Rsqrt: 10,
    Reciprocal: 11,
    LeakyRelu: 12,
  },
  binary: { Add: 0, Sub: 1, Multiply: 2, RealDiv: 3, Maximum: 4, Minimum: 5, SquaredDifference: 6 },
  reduce: { Sum: 0, Max: 1, Min: 2, Mean: 3 },
  activation: { linear: 0, relu: 1 },
  distance: DISTANCE_CODES,
} as const;

export type NativeCodes = { [Table in keyof typeof NATIVE_CODES]: Record<string, number> };
