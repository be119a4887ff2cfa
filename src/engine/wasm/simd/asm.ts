/**
 * A few WebAssembly binary-format encoders, enough to write small numeric functions opcode by opcode
 * (snnl's Adam update and its data movement kernels) over the wasm backend's own memory. The modules
 * import that memory as env.memory, so they read and write tensors where they are, and a worker thread
 * can run the same module on the same (shared) memory.
 */

/** Unsigned LEB128. */
export function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 of a 32-bit integer. */
export function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const byte = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (byte & 0x40) === 0) || (n === -1 && (byte & 0x40) !== 0)) {
      out.push(byte);
      return out;
    }
    out.push(byte | 0x80);
  }
}

export const vector = (items: number[][]) => [...leb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const name = (s: string) => [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

export const I32 = 0x7f;
export const F32 = 0x7d;
export const V128 = 0x7b;

export const get = (i: number) => [0x20, ...leb(i)];
export const set = (i: number) => [0x21, ...leb(i)];
export const i32 = (v: number) => [0x41, ...sleb(v)];
export const simd = (op: number) => [0xfd, ...leb(op)];
export const ADD = [0x6a];
export const SUB = [0x6b];
export const MUL = [0x6c];
/** i32.lt_u */
export const LT = [0x49];
export const SELECT = [0x1b];
/** memarg: 4-byte alignment (float32 data), offset 0. */
export const ALIGN_4 = [0x02, 0x00];
export const F32_LOAD = [0x2a, ...ALIGN_4];
export const F32_STORE = [0x38, ...ALIGN_4];

export const AND = [0x71];
/** if / else / end of a block with no result. */
export const IF = [0x04, 0x40];
export const ELSE = [0x05];
export const END = [0x0b];
/** v128 load and store, 4-byte alignment (float32 data), offset 0. */
export const V128_LOAD = [...simd(0x00), ...ALIGN_4];
export const V128_STORE = [...simd(0x0b), ...ALIGN_4];
export const F32X4_SPLAT = simd(0x13);
export const F32X4_ADD = simd(0xe4);
export const F32X4_MUL = simd(0xe6);

/** f32.add, f64.add (scalars). */
export const F32_ADD = [0x92];
export const F64_ADD = [0xa0];
/** f64.store, 8-byte alignment, offset 0. */
export const F64_STORE = [0x39, 0x03, 0x00];
/** i32.div_u */
export const DIV_U = [0x6e];
/** if / end of a block that yields an f32. */
export const IF_F32 = [0x04, 0x7d];
/** f32.const 0 */
export const F32_ZERO = [0x43, 0x00, 0x00, 0x00, 0x00];
export const F32X4_SUB = simd(0xe5);
export const F32X4_DIV = simd(0xe7);
export const F32X4_SQRT = simd(0xe3);
export const F32X4_NE = simd(0x42);
export const F32X4_GT = simd(0x44);
export const V128_BITSELECT = simd(0x52);
export const F64X2_PROMOTE_LOW = simd(0x5f);
export const F64X2_ADD = simd(0xf0);
/** i8x16.shuffle moving lanes 2, 3 of a float32 vector to lanes 0, 1. */
export const HIGH_TO_LOW = [...simd(0x0d), 8, 9, 10, 11, 12, 13, 14, 15, 8, 9, 10, 11, 12, 13, 14, 15];
/** v128.const of four equal float32 lanes. */
export const f32x4Const = (v: number) => [...simd(0x0c), ...new Uint8Array(new Float32Array([v, v, v, v]).buffer)];
/** f64x2.extract_lane */
export const f64x2Lane = (lane: number) => [...simd(0x21), lane];

/** The product of two i32 locals. */
export const times = (a: number, b: number) => [...get(a), ...get(b), ...MUL];

/** min(a, b) of two unsigned i32 expressions. */
export const minU = (a: number[], b: number[]) => [...a, ...b, ...a, ...b, ...LT, ...SELECT];

/**
 * for (i = start; i < end; i += step) body: `end` is re-evaluated each time (keep it a local or a
 * constant). Unsigned comparison.
 */
export function forLoop(i: number, start: number[], end: number[], step: number[], body: number[]): number[] {
  return [
    ...start,
    ...set(i),
    ...[0x02, 0x40], // block
    ...[0x03, 0x40], // loop
    ...[...get(i), ...end, 0x4f, 0x0d, 0x01], // i >= end: break
    ...body,
    ...[...get(i), ...step, ...ADD, ...set(i)],
    ...[0x0c, 0x00], // continue
    0x0b, // end loop
    0x0b, // end block
  ];
}

export interface FunctionCode {
  name: string;
  params: number[];
  /** Local declarations: [count, type] runs. */
  locals: [number, number][];
  /** The body's instructions, without the final end. */
  code: number[];
}

/** A module importing env.memory (shared, for the multithreaded build's memory, or not) and exporting `functions`. */
export function moduleBytes(functions: FunctionCode[], shared: boolean): Uint8Array {
  const limits = shared ? [0x03, ...leb(1), ...leb(65536)] : [0x01, ...leb(1), ...leb(65536)];
  const bodies = functions.map((f) => {
    const body = [...vector(f.locals.map(([count, type]) => [...leb(count), type])), ...f.code, 0x0b];
    return [...leb(body.length), ...body];
  });
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector(functions.map((f) => [0x60, ...vector(f.params.map((p) => [p])), ...vector([])]))),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, ...limits]])),
    ...section(3, vector(functions.map((_, k) => leb(k)))),
    ...section(7, vector(functions.map((f, k) => [...name(f.name), 0x00, ...leb(k)]))),
    ...section(10, vector(bodies)),
  ]);
}

export type WasmFunction = (...args: number[]) => void;

/** What is used of the WebAssembly API (this project's TypeScript libraries do not declare it). */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

export const isShared = (memory: WasmMemory) =>
  typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;

export function compile(bytes: Uint8Array): object {
  return new api.Module(bytes);
}

/** The module's exports bound to `memory`. */
export function instantiate(module: object, memory: WasmMemory): Record<string, WasmFunction> {
  return new api.Instance(module, { env: { memory } }).exports as Record<string, WasmFunction>;
}
