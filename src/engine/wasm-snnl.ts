/**
 * The fused SNNL kernels (src/loss/fused.ts states the contract) for the wasm backend: the row math in
 * JavaScript on the wasm heap, the two products by the backend's fast matmul. The composed loss is ~60
 * small ops a layer, and on wasm each elementwise op is a single-threaded pass plus a dispatch; here a
 * layer is two passes over the features and one product each way.
 *
 * Layouts are chosen so that no large operand is transposed by a kernel or packed fresh where it can be
 * avoided: the prepared rows R (centred, or unit rows for cosine) are written both as R [b, d] and as
 * R^T [d, b]; the forward Gram matrix is R R^T, and the backward product is R^T A = (A R)^T (A is
 * symmetric), whose packed operand is the small A.
 */
import type { KernelConfig, KernelFunc, TensorInfo } from '@tensorflow/tfjs-core';
import { SNNL_ROWS, SNNL_ROWS_GRAD, type SnnlFusedAttrs } from '../loss/fused.js';

interface WasmHeap {
  makeOutput(shape: number[], dtype: 'float32' | 'int32'): TensorInfo;
  typedArrayFromHeap(t: TensorInfo): Float32Array | Int32Array;
  disposeData(dataId: object): boolean | void;
}

type KernelArgs = Parameters<KernelFunc>[0];

/** As torch.nn.functional.normalize and the composed cosine distance. */
const COSINE_NORM_FLOOR = 1e-12;

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
 * Writes the prepared rows of x [b, d] into `rows` [b, d]: unit rows (cosine; their norms, floored, are
 * returned) or centred rows (the other distances: distances do not change, and the float32 cancellation
 * in |x|^2 + |y|^2 - 2 x.y shrinks with the norms).
 */
function prepare(x: Float32Array, b: number, d: number, cosine: boolean, rows: Float32Array): Float64Array {
  const out = new Float64Array(b);
  if (cosine) {
    for (let i = 0; i < b; i++) {
      let sum = 0;
      for (let k = 0; k < d; k++) sum += x[i * d + k]! * x[i * d + k]!;
      const norm = Math.max(Math.fround(Math.sqrt(sum)), COSINE_NORM_FLOOR);
      out[i] = norm;
      for (let k = 0; k < d; k++) rows[i * d + k] = x[i * d + k]! / norm;
    }
    return out;
  }
  const mean = new Float64Array(d);
  for (let i = 0; i < b; i++) for (let k = 0; k < d; k++) mean[k] = mean[k]! + x[i * d + k]!;
  for (let k = 0; k < d; k++) mean[k] = Math.fround(mean[k]! / b);
  for (let i = 0; i < b; i++) for (let k = 0; k < d; k++) rows[i * d + k] = x[i * d + k]! - mean[k]!;
  return out;
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

const rowsKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmHeap;
  const a = attrs as unknown as SnnlFusedAttrs;
  const x = inputs['x']!;
  const labels = inputs['labels']!;
  const [b, d] = x.shape as [number, number];
  // Allocate first: a later allocation may grow the heap and detach views taken before it.
  const rows = wasm.makeOutput([1, b, d], 'float32');
  const columns = wasm.makeOutput([1, d, b], 'float32');
  const loss = wasm.makeOutput([b], 'float32');
  const k = wasm.makeOutput([b, b], 'float32');
  prepare(floats(wasm, x), b, d, a.distance === 'cosine', floats(wasm, rows));
  transposeInto(floats(wasm, rows), b, d, floats(wasm, columns));
  const gram = product(wasm, rows, columns);
  floats(wasm, k).set(floats(wasm, gram));
  for (const t of [rows, columns, gram]) wasm.disposeData(t.dataId);
  rowMath(floats(wasm, k), floats(wasm, loss), wasm.typedArrayFromHeap(labels) as Int32Array, b, a);
  return [loss, k];
};

const rowsGradKernel: KernelFunc = ({ inputs, backend, attrs }) => {
  const wasm = backend as unknown as WasmHeap;
  const cosine = (attrs as unknown as SnnlFusedAttrs).distance === 'cosine';
  const x = inputs['x']!;
  const [b, d] = x.shape as [number, number];
  const columns = wasm.makeOutput([1, d, b], 'float32');
  const sym = wasm.makeOutput([1, b, b], 'float32');
  const out = wasm.makeOutput([b, d], 'float32');
  // A = H + H^T with H = K * w (row i scaled by w_i), and its row sums.
  const k = floats(wasm, inputs['k']!);
  const w = floats(wasm, inputs['weights']!);
  const pa = floats(wasm, sym);
  const sums = new Float64Array(b);
  for (let i = 0; i < b; i++) {
    let sum = 0;
    for (let j = 0; j < b; j++) {
      const v = Math.fround(k[i * b + j]! * w[i]! + k[j * b + i]! * w[j]!);
      pa[i * b + j] = v;
      sum += v;
    }
    sums[i] = sum;
  }
  const rows = new Float32Array(b * d);
  const norms = prepare(floats(wasm, x), b, d, cosine, rows);
  transposeInto(rows, b, d, floats(wasm, columns));
  const p = product(wasm, columns, sym); // [d, b] = R^T A = (A R)^T
  const ar = floats(wasm, p);
  const rt = floats(wasm, columns);
  const o = floats(wasm, out);
  // Row i of the result is column i of R^T A; in tiles, as the transposes.
  const dot = new Float64Array(b);
  if (cosine)
    for (let c = 0; c < d; c++) for (let i = 0; i < b; i++) dot[i] = dot[i]! - rt[c * b + i]! * ar[c * b + i]!;
  for (let i0 = 0; i0 < b; i0 += TILE) {
    const i1 = Math.min(b, i0 + TILE);
    for (let c0 = 0; c0 < d; c0 += TILE) {
      const c1 = Math.min(d, c0 + TILE);
      for (let i = i0; i < i1; i++) {
        if (cosine) {
          // g = -A U; dLoss/dx_i = (g_i - u_i (u_i . g_i)) / |x_i|
          for (let c = c0; c < c1; c++) o[i * d + c] = (-ar[c * b + i]! - rt[c * b + i]! * dot[i]!) / norms[i]!;
        } else {
          // 2 (rowsum(A) c_i - (A C)_i)
          for (let c = c0; c < c1; c++) o[i * d + c] = 2 * (sums[i]! * rt[c * b + i]! - ar[c * b + i]!);
        }
      }
    }
  }
  for (const t of [columns, sym, p]) wasm.disposeData(t.dataId);
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
