/**
 * The fused SNNL kernels (src/loss/fused.ts states the contract) for the wasm backend: the row math in
 * JavaScript on the wasm heap, the two products by the backend's fast matmul, the transposes by snnl's
 * wasm transpose (src/engine/wasm/simd/runtime.ts). The composed loss is ~60 small ops a layer, and on wasm
 * each elementwise op is a single-threaded pass plus a dispatch.
 *
 * Forward: the Gram matrix R R^T, R = x itself for cosine (scaled by the norms, its diagonal, in the
 * b x b row math) or the centred rows. Backward: R^T S = (S^T R)^T with a b x b S (A, or A with rows
 * divided by the norms for cosine), so that the operand the product packs afresh is the small S; the
 * [d, b] result is transposed back and combined with x in one pass per row.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { SNNL_ROWS, SNNL_ROWS_GRAD, type SnnlFusedAttrs } from '../../kernel-names.js';
import { COSINE_NORM_FLOOR } from '../../loss/distance.js';
import { rowCombineOnHeap, rowDotsOnHeap, runtimeOf, transposeOnHeap } from './simd/runtime.js';

interface WasmHeap {
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array;
  disposeData(dataId: object): boolean | void;
}

type KernelArgs = Parameters<KernelFunc>[0];

/** The smallest normal float32. */
const FLOAT32_MIN_NORMAL = 1.1754943508222875e-38;

const floats = (wasm: WasmHeap, t: TensorInfo) => wasm.typedArrayFromHeap(t) as Float32Array;

/**
 * The backend's own product, set when the kernels are made. Called directly, not through snnl's
 * BatchMatMul: that one may take a fresh large right operand as (b^T a^T)^T, which for R R^T (symmetric,
 * and R^T already at hand) would only add two transposes.
 */
let stockProduct: KernelFunc | undefined;

/** a [1, m, k] times b [1, k, n]. */
function product(wasm: WasmHeap, a: TensorInfo, b: TensorInfo): TensorInfo {
  if (stockProduct === undefined) throw new Error('the wasm SNNL kernels were made without a product');
  return stockProduct({
    inputs: { a, b },
    backend: wasm,
    attrs: { transposeA: false, transposeB: false },
  } as unknown as KernelArgs) as TensorInfo;
}

/** Tile edge of the blocked transposes: a tile of the strided side stays in the first-level cache. */
const TILE = 32;

/** columns [d, b] = rows [b, d]^T, in tiles. */
function transposeInto(rows: Float32Array, b: number, d: number, columns: Float32Array): void {
  for (let i0 = 0; i0 < b; i0 += TILE) {
    const i1 = Math.min(b, i0 + TILE);
    for (let k0 = 0; k0 < d; k0 += TILE) {
      const k1 = Math.min(d, k0 + TILE);
      for (let k = k0; k < k1; k++) for (let i = i0; i < i1; i++) columns[k * b + i] = rows[i * d + k]!;
    }
  }
}

/**
 * Writes the centred rows of x [b, d] into `rows` [b, d] (squared Euclidean and Euclidean distance):
 * distances do not change, and the float32 cancellation in |x|^2 + |y|^2 - 2 x.y shrinks with the norms.
 */
function centre(x: Float32Array, b: number, d: number, rows: Float32Array): void {
  const mean = new Float64Array(d);
  for (let i = 0; i < b; i++) for (let k = 0; k < d; k++) mean[k] = mean[k]! + x[i * d + k]!;
  for (let k = 0; k < d; k++) mean[k] = Math.fround(mean[k]! / b);
  for (let i = 0; i < b; i++) for (let k = 0; k < d; k++) rows[i * d + k] = x[i * d + k]! - mean[k]!;
}

/**
 * From the Gram matrix (in `k`, overwritten with K) to the per-row loss and K, as the native kernel
 * does (native/snnl_native.cc, SnnlForward), in double precision.
 */
function rowMath(k: Float32Array, loss: Float32Array, labels: Int32Array, b: number, a: SnnlFusedAttrs): void {
  const cosine = a.distance === 'cosine';
  const euclidean = a.distance === 'euclidean';
  const lse = a.epsilon < 0;
  const invT = 1 / a.temperature;
  const dist = new Float64Array(b);
  // Read before the rows are overwritten with K.
  const diagonal = Float64Array.from({ length: b }, (_, i) => k[i * b + i]!);
  const e = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    const row = i * b;
    let top = -Infinity;
    for (let j = 0; j < b; j++) {
      let dij: number;
      if (j === i) dij = 0;
      else if (cosine) dij = Math.max(0, Math.fround(1 - k[row + j]!));
      else {
        // The squared norms are the Gram matrix's diagonal (G_ii, not a separate sum): the same
        // product's rounding on both sides, so that equal rows are at distance 0 exactly.
        dij = Math.max(0, Math.fround(Math.fround(-2 * k[row + j]! + diagonal[i]!) + diagonal[j]!));
        if (euclidean) dij = Math.fround(Math.sqrt(dij));
      }
      dist[j] = dij;
      if (j !== i) top = Math.max(top, -dij * invT);
    }
    const shift = lse ? top : 0;
    const yi = labels[i]!;
    let total = 0;
    let partners = 0;
    let partnerCount = 0;
    for (let j = 0; j < b; j++) {
      e[j] = j === i ? 0 : Math.exp(-dist[j]! * invT - shift);
      total += e[j]!;
      if (j !== i && labels[j] === yi) {
        partners += e[j]!;
        partnerCount++;
      }
    }
    if (lse) {
      if (partnerCount === 0) {
        loss[i] = 0;
        for (let j = 0; j < b; j++) k[row + j] = (-e[j]! / total) * invT;
      } else if (partners > 1e-30) {
        loss[i] = -Math.log(partners / total);
        for (let j = 0; j < b; j++) {
          const q = j !== i && labels[j] === yi ? e[j]! / partners : 0;
          k[row + j] = (q - e[j]! / total) * invT;
        }
      } else {
        // Every partner's term underflowed against the row maximum: shift the partners by their own.
        let partnerTop = -Infinity;
        for (let j = 0; j < b; j++)
          if (j !== i && labels[j] === yi) partnerTop = Math.max(partnerTop, -dist[j]! * invT);
        let sum = 0;
        for (let j = 0; j < b; j++) if (j !== i && labels[j] === yi) sum += Math.exp(-dist[j]! * invT - partnerTop);
        const lsePart = partnerTop + Math.log(sum);
        loss[i] = shift + Math.log(total) - lsePart;
        for (let j = 0; j < b; j++) {
          const q = j !== i && labels[j] === yi ? Math.exp(-dist[j]! * invT - lsePart) : 0;
          k[row + j] = (q - e[j]! / total) * invT;
        }
      }
    } else {
      const epsilon = a.epsilon;
      const picked = partners / (total + epsilon);
      loss[i] = -Math.log(picked + epsilon);
      const scale = 1 / ((picked + epsilon) * (total + epsilon) * a.temperature);
      for (let j = 0; j < b; j++) {
        const same = j !== i && labels[j] === yi ? 1 : 0;
        k[row + j] = e[j]! * scale * (same - picked);
      }
    }
    if (euclidean) {
      // dD/dS = 1 / (2 D); 0 where D = 0 (the diagonal and duplicate points).
      for (let j = 0; j < b; j++) k[row + j] = dist[j]! > 0 ? k[row + j]! / (2 * dist[j]!) : 0;
    }
  }
}

/** [1, d, b] = x [b, d]^T on the heap: by snnl's wasm transpose where the runtime runs, else in tiles in JS. */
function transposedOnHeap(wasm: WasmHeap, x: TensorInfo, b: number, d: number): TensorInfo {
  const out = wasm.makeOutput([1, d, b], 'float32');
  const runtime = runtimeOf(wasm);
  if (runtime === null) transposeInto(floats(wasm, x), b, d, floats(wasm, out));
  else transposeOnHeap(runtime, floats(wasm, x).byteOffset, floats(wasm, out).byteOffset, b, d, d, b);
  return out;
}

/** x [b, d] seen as [1, b, d], the product's layout (same data). */
const asBatch = (x: TensorInfo, b: number, d: number): TensorInfo => ({
  dataId: x.dataId,
  shape: [1, b, d],
  dtype: x.dtype,
});

const rowsKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmHeap;
  const a = attrs as unknown as SnnlFusedAttrs;
  const x = inputs['x']!;
  const labels = inputs['labels']!;
  const [b, d] = x.shape as [number, number];
  const cosine = a.distance === 'cosine';
  // Allocate first: a later allocation may grow the heap and detach views taken before it.
  const loss = wasm.makeOutput([b], 'float32');
  const k = wasm.makeOutput([b, b], 'float32');
  // Cosine: the Gram matrix of x itself, scaled by the norms (its diagonal) below; the other distances:
  // of the centred rows.
  let rows = asBatch(x, b, d);
  if (!cosine) {
    rows = wasm.makeOutput([1, b, d], 'float32');
    centre(floats(wasm, x), b, d, floats(wasm, rows));
  }
  const columns = transposedOnHeap(wasm, rows, b, d);
  const gram = product(wasm, rows, columns);
  const g = floats(wasm, gram);
  const out = floats(wasm, k);
  if (cosine) {
    // cos_ij = G_ij / (|x_i| |x_j|); |x_i| |x_j| as sqrt(G_ii G_jj) so that equal rows give exactly 1.
    const squares = Float64Array.from({ length: b }, (_, i) => g[i * b + i]!);
    const norms = squares.map((s) => Math.max(Math.fround(Math.sqrt(s)), COSINE_NORM_FLOOR));
    for (let i = 0; i < b; i++) {
      for (let j = 0; j < b; j++) {
        const floored = norms[i] === COSINE_NORM_FLOOR || norms[j] === COSINE_NORM_FLOOR;
        const scale = floored ? norms[i]! * norms[j]! : Math.sqrt(squares[i]! * squares[j]!);
        out[i * b + j] = g[i * b + j]! / scale;
      }
    }
  } else out.set(g);
  for (const t of cosine ? [columns, gram] : [rows, columns, gram]) wasm.disposeData(t.dataId);
  rowMath(floats(wasm, k), floats(wasm, loss), wasm.typedArrayFromHeap(labels) as Int32Array, b, a);
  return [loss, k];
};

/**
 * The gradient's two passes over rows, by snnl's wasm SIMD functions (both cores) where the runtime
 * runs, else in JavaScript: dots(x, y)_i = x_i . y_i (double sums); combine: out_i = alpha_i x_i + beta_i y_i.
 */
function rowDots(wasm: WasmHeap, x: TensorInfo, y: TensorInfo, b: number, d: number): Float64Array {
  const runtime = runtimeOf(wasm);
  const out = new Float64Array(b);
  const width = runtime === null ? 0 : d - (d % 4);
  if (runtime !== null) {
    const scratch = wasm.makeOutput([2 * b + 2], 'float32');
    const at = floats(wasm, scratch).byteOffset;
    const aligned = at + (at % 8);
    rowDotsOnHeap(runtime, floats(wasm, x).byteOffset, floats(wasm, y).byteOffset, aligned, b, width, d);
    out.set(new Float64Array(floats(wasm, scratch).buffer, aligned, b));
    wasm.disposeData(scratch.dataId);
  }
  const xs = floats(wasm, x);
  const ys = floats(wasm, y);
  for (let i = 0; i < b; i++) {
    let sum = out[i]!;
    for (let c = i * d + width; c < (i + 1) * d; c++) sum += xs[c]! * ys[c]!;
    out[i] = sum;
  }
  return out;
}

function rowCombine(
  wasm: WasmHeap,
  x: TensorInfo,
  y: TensorInfo,
  out: TensorInfo,
  [b, d]: [number, number],
  alpha: Float64Array,
  beta: Float64Array,
): void {
  const runtime = runtimeOf(wasm);
  const width = runtime === null ? 0 : d - (d % 4);
  if (runtime !== null) {
    const scratch = wasm.makeOutput([2 * b], 'float32');
    const coefficients = floats(wasm, scratch);
    coefficients.set(alpha);
    coefficients.set(beta, b);
    const [xAt, yAt, outAt] = [x, y, out].map((t) => floats(wasm, t).byteOffset) as [number, number, number];
    const at = coefficients.byteOffset;
    rowCombineOnHeap(runtime, xAt, yAt, outAt, b, width, d, at, at + 4 * b);
    wasm.disposeData(scratch.dataId);
  }
  const xs = floats(wasm, x);
  const ys = floats(wasm, y);
  const o = floats(wasm, out);
  for (let i = 0; i < b; i++) {
    const a = alpha[i]!;
    const e = beta[i]!;
    for (let c = i * d + width; c < (i + 1) * d; c++) o[c] = a * xs[c]! + e * ys[c]!;
  }
}

const rowsGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmHeap;
  const cosine = (attrs as unknown as SnnlFusedAttrs).distance === 'cosine';
  const x = inputs['x']!;
  const [b, d] = x.shape as [number, number];
  const sym = wasm.makeOutput([1, b, b], 'float32');
  const out = wasm.makeOutput([b, d], 'float32');
  // Cosine: the product runs on x, with A's columns divided by the norms (A U = (A N^-1) X); the other
  // distances: on the centred rows.
  let rows = asBatch(x, b, d);
  let norms: Float64Array | undefined;
  if (cosine) {
    norms = rowDots(wasm, x, x, b, d).map((s) => Math.max(Math.fround(Math.sqrt(s)), COSINE_NORM_FLOOR));
  } else {
    rows = wasm.makeOutput([1, b, d], 'float32');
    centre(floats(wasm, x), b, d, floats(wasm, rows));
  }
  // A = H + H^T with H = K * w (row i scaled by w_i), and its row sums.
  const k = floats(wasm, inputs['k']!);
  const w = floats(wasm, inputs['weights']!);
  const pa = floats(wasm, sym);
  const sums = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let sum = 0;
    for (let j = 0; j < b; j++) {
      let v = Math.fround(k[i * b + j]! * w[i]! + k[j * b + i]! * w[j]!);
      // Subnormal floats (exp(-D/T) of far points) make the product ~70x slower on this CPU (340 ms
      // against 5 for b = 128, d = 3200, every entry subnormal); their share of the gradient is below
      // float32's resolution of the other terms.
      if (Math.abs(v) < FLOAT32_MIN_NORMAL) v = 0;
      // Stored transposed for the product below (R^T S = (S^T R)^T): S_ij = A_ij / |x_i|.
      pa[i * b + j] = norms === undefined ? v : v / norms[i]!;
      sum += v;
    }
    sums[i] = sum;
  }
  const columns = transposedOnHeap(wasm, rows, b, d);
  const pt = product(wasm, columns, sym); // [d, b] = R^T A = (A R)^T
  const p = transposedOnHeap(wasm, pt, d, b); // [1, b, d]: P = A R
  if (norms !== undefined) {
    // g = -A U; dLoss/dx_i = (g_i - u_i (u_i . g_i)) / |x_i| = (x_i (x_i . P_i) / |x_i|^2 - P_i) / |x_i|
    const dots = rowDots(wasm, x, p, b, d);
    const alpha = dots.map((dot, i) => dot / norms[i]! ** 3);
    rowCombine(
      wasm,
      x,
      p,
      out,
      [b, d],
      alpha,
      norms.map((n) => -1 / n),
    );
  } else {
    // 2 (rowsum(A) c_i - (A C)_i)
    rowCombine(
      wasm,
      rows,
      p,
      out,
      [b, d],
      sums.map((sum) => 2 * sum),
      new Float64Array(b).fill(-2),
    );
  }
  for (const t of cosine ? [columns, sym, pt, p] : [rows, columns, sym, pt, p]) wasm.disposeData(t.dataId);
  return out;
};

/** The fused SNNL kernels for 'wasm', on the backend's stock BatchMatMul (installed with snnl's other wasm kernels). */
export function wasmSnnlKernels(batchMatMul: KernelFunc): KernelConfig[] {
  stockProduct = batchMatMul;
  return [
    { kernelName: SNNL_ROWS, backendName: 'wasm', kernelFunc: rowsKernel },
    { kernelName: SNNL_ROWS_GRAD, backendName: 'wasm', kernelFunc: rowsGradKernel },
  ];
}
