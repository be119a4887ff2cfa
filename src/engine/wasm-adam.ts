/**
 * Adam's update as a WebAssembly SIMD function over the wasm backend's own (shared) memory.
 *
 * In JavaScript the update is bound by one double-precision square root and divide per element (about
 * 8 ns an element on the shared heap); as f32x4 it does four at a time, in float32 as tfjs's own Adam
 * does. The module is small enough to write out here, opcode by opcode (WebAssembly binary format and its
 * SIMD extension): it imports the backend's WebAssembly.Memory, so it reads and writes tensors where they
 * are, and a worker thread can run the same module on the same memory.
 *
 * adam(value, m, v, gradient, newValue, newM, newV: byte addresses, bytes: i32 (a multiple of 16),
 *      beta1, beta2, 1 - beta1, 1 - beta2, learningRate, c1, c2, epsilon: f32)
 *   m' = beta1 m + (1 - beta1) g;  v' = beta2 v + (1 - beta2) g g;
 *   value' = value - learningRate (m' / c1) / (sqrt(v' / c2) + epsilon)
 */

/** Unsigned LEB128. */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let byte = n & 0x7f;
    n >>>= 7;
    if (n !== 0) byte |= 0x80;
    out.push(byte);
  } while (n !== 0);
  return out;
}

const vector = (items: number[][]) => [...leb(items.length), ...items.flat()];
const section = (id: number, body: number[]) => [id, ...leb(body.length), ...body];
const name = (s: string) => [...leb(s.length), ...Array.from(s, (c) => c.charCodeAt(0))];

const I32 = 0x7f;
const F32 = 0x7d;
const V128 = 0x7b;

// Instructions used below.
const get = (i: number) => [0x20, ...leb(i)];
const set = (i: number) => [0x21, ...leb(i)];
const simd = (op: number) => [0xfd, ...leb(op)];
const ALIGN_4 = [0x02, 0x00]; // memarg: 4-byte alignment (float32 data), offset 0
const load = (address: number, index: number) => [...get(address), ...get(index), 0x6a, ...simd(0x00), ...ALIGN_4];
const store = [...simd(0x0b), ...ALIGN_4];
const SPLAT = simd(0x13);
const [SQRT, ADD, SUB, MUL, DIV] = [0xe3, 0xe4, 0xe5, 0xe6, 0xe7].map(simd) as [
  number[],
  number[],
  number[],
  number[],
  number[],
];

// Parameters 0-6: addresses (value, m, v, g, newValue, newM, newV); 7: bytes; 8-15: the scalars.
const [VALUE, M, V, G, NEW_VALUE, NEW_M, NEW_V, BYTES] = [0, 1, 2, 3, 4, 5, 6, 7];
// Locals: 16 the byte index; 17-24 the scalars splatted; 25-27 g, m', v'.
const I = 16;
const [B1, B2, K1, K2, LR, C1, C2, EPS] = [17, 18, 19, 20, 21, 22, 23, 24];
const [GV, MV, VV] = [25, 26, 27];

function body(): number[] {
  const code = [
    ...[8, 9, 10, 11, 12, 13, 14, 15].flatMap((p, k) => [...get(p), ...SPLAT, ...set(17 + k)]),
    ...[0x02, 0x40], // block
    ...[0x03, 0x40], // loop
    ...[...get(I), ...get(BYTES), 0x4f, 0x0d, 0x01], // if i >= bytes: break
    ...[...load(G, I), ...set(GV)],
    ...[...load(M, I), ...get(B1), ...MUL, ...get(GV), ...get(K1), ...MUL, ...ADD, ...set(MV)],
    ...[...load(V, I), ...get(B2), ...MUL, ...get(GV), ...get(GV), ...MUL, ...get(K2), ...MUL, ...ADD, ...set(VV)],
    ...[...get(NEW_M), ...get(I), 0x6a, ...get(MV), ...store],
    ...[...get(NEW_V), ...get(I), 0x6a, ...get(VV), ...store],
    ...[...get(NEW_VALUE), ...get(I), 0x6a, ...load(VALUE, I)],
    ...[...get(LR), ...get(MV), ...get(C1), ...DIV, ...MUL],
    ...[...get(VV), ...get(C2), ...DIV, ...SQRT, ...get(EPS), ...ADD],
    ...[...DIV, ...SUB, ...store],
    ...[...get(I), 0x41, 0x10, 0x6a, ...set(I)], // i += 16
    ...[0x0c, 0x00], // continue
    0x0b, // end loop
    0x0b, // end block
    0x0b, // end function
  ];
  const locals = vector([
    [1, I32],
    [11, V128],
  ]);
  return [...locals, ...code];
}

/** The module's bytes; `shared`: whether it imports a shared memory (the multithreaded build's). */
export function adamModuleBytes(shared: boolean): Uint8Array {
  const params = [...Array<number>(8).fill(I32), ...Array<number>(8).fill(F32)];
  const limits = shared ? [0x03, ...leb(1), ...leb(65536)] : [0x01, ...leb(1), ...leb(65536)];
  const code = body();
  return Uint8Array.from([
    ...[0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00],
    ...section(1, vector([[0x60, ...vector(params.map((p) => [p])), ...vector([])]])),
    ...section(2, vector([[...name('env'), ...name('memory'), 0x02, ...limits]])),
    ...section(3, vector([[0]])),
    ...section(7, vector([[...name('adam'), 0x00, 0]])),
    ...section(10, vector([[...leb(code.length), ...code]])),
  ]);
}

export type AdamFunction = (...args: number[]) => void;

/** What is used of the WebAssembly API (this project's TypeScript libraries do not declare it). */
export interface WasmMemory {
  readonly buffer: ArrayBufferLike;
}
interface WebAssemblyApi {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}
const api = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;

/** The compiled module for a memory that is (or is not) shared. */
export function compileAdam(shared: boolean): object {
  return new api.Module(adamModuleBytes(shared));
}

/** The update function bound to `memory` (compiled here unless `module` is given), or null where it cannot run. */
export function adamOn(memory: WasmMemory, module?: object): AdamFunction | null {
  try {
    const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
    const instance = new api.Instance(module ?? compileAdam(shared), { env: { memory } });
    return instance.exports['adam'] as AdamFunction;
  } catch {
    return null;
  }
}
