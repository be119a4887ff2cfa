/**
 * snnl's own WebAssembly functions on the wasm backend's memory (Adam's update, transposes, col2im and im2col, the
 * fused SNNL gradient's row passes, ReLU's gradient, column sums), compiled once per memory, with one
 * helper thread (src/engine/wasm/simd/helper.ts) where the memory is shared (the multithreaded build) so that
 * a large job is split between two cores.
 */
import { adamFunction } from './adam.js';
import { compile, instantiate, isShared, moduleBytes, type WasmFunction, type WasmMemory } from './asm.js';
import { WasmHelper } from './helper.js';
import { col2imFunction } from './col2im.js';
import { im2colTFunction } from './im2col.js';
import { reluGradFunction } from './relu-grad.js';
import { rowCombineFunction, rowDotsFunction } from './rows.js';
import { sumRowsFunction } from './sum.js';
import { transposeBlocksFunction, transposeFunction } from './transpose.js';

const FUNCTIONS = [
  adamFunction,
  transposeFunction,
  transposeBlocksFunction,
  col2imFunction,
  rowDotsFunction,
  rowCombineFunction,
  reluGradFunction,
  sumRowsFunction,
  im2colTFunction,
];

export interface WasmRuntime {
  functions: Record<string, WasmFunction>;
  /** null where no worker starts (the whole job then runs on this thread). */
  helper: WasmHelper | null;
}

/** What is used of the wasm backend here: its Emscripten module exposes the WebAssembly.Memory. */
export interface WasmBackendMemory {
  wasm?: { wasmMemory?: WasmMemory };
}

const runtimes = new WeakMap<object, WasmRuntime | null>();

let enabled = true;

/**
 * With false, runtimeOf answers null, so that every kernel takes its JavaScript or stock path (the
 * paths of a backend whose memory is not exposed). For tests.
 */
export function setWasmRuntimeEnabled(on: boolean): void {
  enabled = on;
}

/** The bytes of the module, for a memory that is (or is not) shared. */
export const runtimeModuleBytes = (shared: boolean) => moduleBytes(FUNCTIONS, shared);

/** The functions for this backend's memory; null where the memory is not exposed or the module cannot run. */
export function runtimeOf(backend: unknown): WasmRuntime | null {
  const memory = (backend as WasmBackendMemory).wasm?.wasmMemory;
  if (memory === undefined || !enabled) return null;
  if (!runtimes.has(memory)) {
    let runtime: WasmRuntime | null = null;
    try {
      const shared = isShared(memory);
      const module = compile(runtimeModuleBytes(shared));
      let helper: WasmHelper | null = null;
      try {
        if (shared)
          helper = new WasmHelper(
            module,
            memory,
            FUNCTIONS.map((f) => f.name),
          );
      } catch {
        helper = null;
      }
      runtime = { functions: instantiate(module, memory), helper };
    } catch {
      runtime = null;
    }
    runtimes.set(memory, runtime);
  }
  return runtimes.get(memory)!;
}

/**
 * Jobs of fewer elements run on this thread alone. Waking the helper costs more than it saves below a
 * few hundred thousand elements: the helper competes for the second core with the backend's own pool
 * threads (a CNN 28x28 training step, medians of 4 alternating rounds: 245 ms with no helper, 245 at
 * 64K, 231-233 at 256K and 512K).
 */
export const SPLIT_AT = 1 << 18;
let splitAt = SPLIT_AT;

/** Sets the smallest job split with the helper (tests use a small one to reach the split paths). */
export function setSplitThreshold(elements: number): void {
  splitAt = elements;
}

/** The helper's part of n units (n >= 2): half, rounded down. */
export const helperPart = (n: number) => Math.min(n - 1, Math.max(1, n >> 1));

/** Whether a job of `elements` is split with the helper. */
export const splits = (runtime: WasmRuntime, elements: number) => runtime.helper !== null && elements >= splitAt;

/**
 * dst[q][c][r] = src[q][r][c] on the heap, strides in elements: src row r of matrix q starts at
 * src + q srcCount + r srcRow, dst column c of matrix q at dst + q dstCount + c dstCol. Large jobs are
 * split with the helper (by matrices, or by the longer side when there is one).
 */
export function transposeOnHeap(
  runtime: WasmRuntime,
  src: number,
  dst: number,
  rows: number,
  cols: number,
  srcRow: number,
  dstCol: number,
  count = 1,
  srcCount = 0,
  dstCount = 0,
): void {
  const run = runtime.functions['transpose']!;
  const args = (s: number, d: number, r: number, c: number, q: number) => [
    s,
    d,
    r,
    c,
    4 * srcRow,
    4 * dstCol,
    q,
    4 * srcCount,
    4 * dstCount,
  ];
  if (!splits(runtime, rows * cols * count)) {
    run(...args(src, dst, rows, cols, count));
  } else if (count >= 2) {
    const h = helperPart(count);
    runtime.helper!.split('transpose', args(src, dst, rows, cols, h), () =>
      run(...args(src + 4 * h * srcCount, dst + 4 * h * dstCount, rows, cols, count - h)),
    );
  } else if (cols >= rows) {
    // By columns: each thread writes its own destination rows (1.5x faster than by rows for 128 x 9216).
    const h = helperPart(cols);
    runtime.helper!.split('transpose', args(src, dst, rows, h, 1), () =>
      run(...args(src + 4 * h, dst + 4 * h * dstCol, rows, cols - h, 1)),
    );
  } else {
    const h = helperPart(rows);
    runtime.helper!.split('transpose', args(src, dst, h, cols, 1), () =>
      run(...args(src + 4 * h * srcRow, dst + 4 * h, rows - h, cols, 1)),
    );
  }
}

/**
 * [a, b, block] -> [b, a, block] in each of `count` matrices (strides in floats, as transposeOnHeap):
 * dst block (q, c, r) = src block (q, r, c); split with the helper by matrices or by columns.
 */
export function transposeBlocksOnHeap(
  runtime: WasmRuntime,
  src: number,
  dst: number,
  [rows, cols, block]: [number, number, number],
  [srcRow, dstCol]: [number, number],
  [count, srcCount, dstCount]: [number, number, number] = [1, 0, 0],
): void {
  const run = runtime.functions['transposeBlocks']!;
  const args = (s: number, d: number, c: number, q: number) => [
    s,
    d,
    rows,
    c,
    4 * srcRow,
    4 * dstCol,
    q,
    4 * srcCount,
    4 * dstCount,
    4 * block,
  ];
  if (!splits(runtime, rows * cols * block * count)) {
    run(...args(src, dst, cols, count));
  } else if (count >= 2) {
    const h = helperPart(count);
    runtime.helper!.split('transposeBlocks', args(src, dst, cols, h), () =>
      run(...args(src + 4 * h * srcCount, dst + 4 * h * dstCount, cols, count - h)),
    );
  } else {
    const h = helperPart(cols);
    runtime.helper!.split('transposeBlocks', args(src, dst, h, 1), () =>
      run(...args(src + 4 * h * block, dst + 4 * h * dstCol, cols - h, 1)),
    );
  }
}

/** A convolution's geometry as col2im takes it (src/engine/wasm/simd/col2im.ts). */
export interface Col2imGeometry {
  oh: number;
  ow: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  top: number;
  left: number;
  height: number;
  width: number;
  cin: number;
}

/**
 * Adds the column matrix at `col` (images x oh x ow rows of kh kw cin floats) into dx at `dx` (images x
 * height x width x cin), byte addresses; split by images with the helper (their dx are disjoint).
 */
export function col2imOnHeap(runtime: WasmRuntime, col: number, dx: number, images: number, g: Col2imGeometry): void {
  const run = runtime.functions['col2im']!;
  const shape = [g.oh, g.ow, g.kh, g.kw, g.sh, g.sw, g.top, g.left, g.height, g.width, g.cin];
  const colBytes = 4 * g.oh * g.ow * g.kh * g.kw * g.cin;
  const dxBytes = 4 * g.height * g.width * g.cin;
  if (images < 2 || !splits(runtime, (colBytes / 4) * images)) {
    run(col, dx, images, ...shape);
    return;
  }
  const h = helperPart(images);
  runtime.helper!.split('col2im', [col, dx, h, ...shape], () =>
    run(col + h * colBytes, dx + h * dxBytes, images - h, ...shape),
  );
}

/**
 * Runs a row function (src/engine/wasm/simd/rows.ts) over `rows` rows, half of them on the helper when large:
 * `args(first, count)` gives its arguments for rows [first, first + count).
 */
function byRows(
  runtime: WasmRuntime,
  name: string,
  rows: number,
  size: number,
  args: (first: number, count: number) => number[],
) {
  const run = runtime.functions[name]!;
  if (rows < 2 || !splits(runtime, size)) {
    run(...args(0, rows));
    return;
  }
  const h = helperPart(rows);
  runtime.helper!.split(name, args(0, h), () => run(...args(h, rows - h)));
}

/**
 * out[i] (float64, at byte address `out`) = x_i . y_i over the first `width` (a multiple of 4) floats of
 * each row of two [rows, stride] matrices at byte addresses x and y.
 */
export function rowDotsOnHeap(
  runtime: WasmRuntime,
  x: number,
  y: number,
  out: number,
  rows: number,
  width: number,
  stride: number,
): void {
  byRows(runtime, 'rowDots', rows, rows * width, (first, count) => [
    x + 4 * first * stride,
    y + 4 * first * stride,
    out + 8 * first,
    count,
    width,
    stride,
  ]);
}

/** out_i = alpha_i x_i + beta_i y_i over the first `width` (a multiple of 4) floats of each row; alpha, beta float32. */
export function rowCombineOnHeap(
  runtime: WasmRuntime,
  x: number,
  y: number,
  out: number,
  rows: number,
  width: number,
  stride: number,
  alpha: number,
  beta: number,
): void {
  byRows(runtime, 'rowCombine', rows, rows * width, (first, count) => [
    x + 4 * first * stride,
    y + 4 * first * stride,
    out + 4 * first * stride,
    count,
    width,
    stride,
    alpha + 4 * first,
    beta + 4 * first,
  ]);
}

/** out = dy * step(x) over `elements` floats (a multiple of 4) at byte addresses dy, x, out; halves split when large. */
export function reluGradOnHeap(runtime: WasmRuntime, dy: number, x: number, out: number, elements: number): void {
  const run = runtime.functions['reluGrad']!;
  if (!splits(runtime, elements)) {
    run(dy, x, out, 4 * elements);
    return;
  }
  const h = 16 * helperPart(elements >> 2); // bytes of the helper's part, a multiple of 16
  runtime.helper!.split('reluGrad', [dy, x, out, h], () => run(dy + h, x + h, out + h, 4 * elements - h));
}

/** Rows a float32 partial sum covers in sumRowsOnHeap. */
export const SUM_CHUNK = 64;

/**
 * Partial column sums of x [rows, stride] (byte address) over its first `width` columns (a multiple of
 * 4) into `partials` (byte address; ceil(rows / SUM_CHUNK) x width floats, zeroed), chunk by chunk;
 * split with the helper at a chunk boundary when large.
 */
export function sumRowsOnHeap(
  runtime: WasmRuntime,
  x: number,
  partials: number,
  rows: number,
  width: number,
  stride: number,
): void {
  const run = runtime.functions['sumRows']!;
  const chunks = Math.ceil(rows / SUM_CHUNK);
  if (chunks < 2 || !splits(runtime, rows * width)) {
    run(x, partials, rows, width, SUM_CHUNK, stride);
    return;
  }
  const h = helperPart(chunks) * SUM_CHUNK;
  runtime.helper!.split('sumRows', [x, partials, h, width, SUM_CHUNK, stride], () =>
    run(x + 4 * h * stride, partials + 4 * (h / SUM_CHUNK) * width, rows - h, width, SUM_CHUNK, stride),
  );
}

/**
 * The transposed column matrix (src/engine/wasm/simd/im2col.ts) of x (byte address; images x height x width x
 * cin) into colT (byte address; kh kw cin rows of images oh ow); split by filter rows with the helper.
 */
export function im2colTOnHeap(runtime: WasmRuntime, x: number, colT: number, images: number, g: Col2imGeometry): void {
  const run = runtime.functions['im2colT']!;
  const shape = [g.height, g.width, g.cin, g.kw, g.oh, g.ow, g.sh, g.sw, g.top, g.left];
  const size = g.kh * g.kw * g.cin * images * g.oh * g.ow;
  if (g.kh < 2 || !splits(runtime, size)) {
    run(x, colT, images, ...shape, 0, g.kh);
    return;
  }
  const h = helperPart(g.kh);
  runtime.helper!.split('im2colT', [x, colT, images, ...shape, 0, h], () => run(x, colT, images, ...shape, h, g.kh));
}
