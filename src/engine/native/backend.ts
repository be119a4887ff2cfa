/**
 * The `native` backend: TensorFlow.js kernels run in LibTorch's ATen through snnl's addon.
 *
 * It is the cpu backend (its tensors are plain typed arrays, which the addon hands to ATen without copies)
 * with the heavy kernels replaced: matrix products, convolutions and their gradients, max pooling, the
 * elementwise and reduction ops of a training step on float32, transpose, slice, pad, the fused SNNL
 * forward and backward, and the fused Adam update. Every other kernel, and every replaced one on inputs it
 * does not accelerate (other dtypes, NCHW, tiny tensors where a call into the addon costs more than the
 * arithmetic), runs the cpu backend's own kernel on the same data, so everything still works.
 */
import * as tf from '@tensorflow/tfjs-core';
import { util, type TensorInfo } from '@tensorflow/tfjs-core';
import { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './addon.js';

/**
 * Output buffers, reused. A training step allocates the same large outputs every step; left to V8, each
 * allocation counts as external memory pressure and the collector runs several times a step (measured:
 * about 11 collections and 20 ms of a 118 ms CNN step). The backend knows when a tensor's data is
 * disposed, so it returns the buffer here instead, keyed by its exact size.
 *
 * A buffer is reused only when no live tensor refers to it: every entry written into the backend's data
 * storage is counted against its buffer (cpu kernels may make a new tensor over an input's buffer, e.g.
 * a slice view), and values read out to callers (dataSync, data) are copies.
 */
class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly users = new Map<ArrayBuffer, number>();
  private freeBytes = 0;

  constructor(private readonly maxFreeBytes: number) {}

  floats(n: number): Float32Array {
    const bytes = n * 4;
    const reused = this.free.get(bytes)?.pop();
    if (reused !== undefined) this.freeBytes -= bytes;
    const buffer = reused ?? (Buffer.allocUnsafeSlow(bytes).buffer as ArrayBuffer);
    this.users.set(buffer, 0);
    return new Float32Array(buffer, 0, n);
  }

  owns(values: unknown): values is Float32Array {
    return values instanceof Float32Array && this.users.has(values.buffer as ArrayBuffer);
  }

  retain(values: unknown): void {
    if (!this.owns(values)) return;
    const buffer = values.buffer as ArrayBuffer;
    this.users.set(buffer, this.users.get(buffer)! + 1);
  }

  release(values: unknown): void {
    if (!this.owns(values)) return;
    const buffer = values.buffer as ArrayBuffer;
    const count = this.users.get(buffer)! - 1;
    if (count > 0) {
      this.users.set(buffer, count);
      return;
    }
    this.users.delete(buffer);
    if (this.freeBytes + buffer.byteLength > this.maxFreeBytes) return; // left to the collector
    const list = this.free.get(buffer.byteLength);
    if (list) list.push(buffer);
    else this.free.set(buffer.byteLength, [buffer]);
    this.freeBytes += buffer.byteLength;
  }

  clear(): void {
    this.free.clear();
    this.users.clear();
    this.freeBytes = 0;
  }
}

type Values = Parameters<MathBackendCPU['write']>[0];

export class NativeBackend extends MathBackendCPU {
  private readonly pool = new BufferPool(1 << 30);

  constructor(readonly addon: NativeAddon) {
    super();
    // The cpu backend greets Node users with advice to install tfjs-node; this is not that backend.
    (this as unknown as { firstUse: boolean }).firstUse = false;
  }

  /** The float32 values of a tensor, or undefined when it holds another dtype. */
  floats(t: TensorInfo): Float32Array | undefined {
    if (t.dtype !== 'float32') return undefined;
    const values = this.data.get(t.dataId).values;
    return values instanceof Float32Array ? values : undefined;
  }

  /** An uninitialized float32 array of n elements (every addon function writes all of its output). */
  allocate(n: number): Float32Array {
    return this.pool.floats(n);
  }

  /** A float32 output of `shape`, written by `fill` (an addon call). */
  output(shape: number[], fill: (out: Float32Array) => void): TensorInfo {
    const out = this.allocate(util.sizeFromShape(shape));
    fill(out);
    return this.makeTensorInfo(shape, 'float32', out);
  }

  override write(values: Values, shape: number[], dtype: tf.DataType): tf.DataId {
    this.pool.retain(values);
    return super.write(values, shape, dtype);
  }

  override move(dataId: tf.DataId, values: Values, shape: number[], dtype: tf.DataType, refCount: number): void {
    this.pool.retain(values);
    super.move(dataId, values, shape, dtype, refCount);
  }

  override disposeData(dataId: tf.DataId, force = false): boolean {
    const values = this.data.has(dataId) ? this.data.get(dataId).values : undefined;
    const disposed = super.disposeData(dataId, force);
    if (values !== undefined && !this.data.has(dataId)) this.pool.release(values);
    return disposed;
  }

  /** Values handed to callers are copies when their buffer will be reused. */
  override readSync(dataId: tf.DataId): Values {
    const values = super.readSync(dataId);
    return this.pool.owns(values) ? values.slice() : values;
  }

  override dispose(): void {
    super.dispose();
    this.pool.clear();
  }
}
