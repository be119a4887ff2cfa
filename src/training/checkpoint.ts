/**
 * Checkpoints, written atomically (src/io/atomic.ts).
 *
 * A checkpoint is one binary file (tfjs-node's file IO handler is not available here): a 4-byte length,
 * a JSON manifest ({name, shape, offset} per tensor, plus any metadata), then the float32 values.
 */
import { readFileSync } from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { InputError } from '../errors.js';
import { writeAtomic } from '../io/atomic.js';

export interface NamedTensor {
  name: string;
  tensor: tf.Tensor;
}

interface Manifest<M> {
  format: 'snnl-checkpoint-1';
  tensors: Array<{ name: string; shape: number[]; offset: number }>;
  metadata: M;
}

export function encodeCheckpoint<M>(tensors: NamedTensor[], metadata: M): Uint8Array {
  let offset = 0;
  const entries = tensors.map(({ name, tensor }) => {
    const entry = { name, shape: tensor.shape, offset };
    offset += tensor.size;
    return entry;
  });
  const manifest: Manifest<M> = { format: 'snnl-checkpoint-1', tensors: entries, metadata };
  const json = Buffer.from(JSON.stringify(manifest));
  const values = new Float32Array(offset);
  tensors.forEach(({ tensor }, k) => values.set(tensor.dataSync() as Float32Array, entries[k]!.offset));
  const head = Buffer.alloc(4);
  head.writeUInt32LE(json.length);
  return Buffer.concat([head, json, Buffer.from(values.buffer, values.byteOffset, values.byteLength)]);
}

export function decodeCheckpoint<M>(bytes: Uint8Array, path: string): { tensors: NamedTensor[]; metadata: M } {
  const fail = (what: string): never => {
    throw new InputError(path, `damaged checkpoint: ${what}`);
  };
  if (bytes.length < 4) fail('too short');
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = buffer.readUInt32LE(0);
  let manifest: Manifest<M>;
  try {
    manifest = JSON.parse(buffer.subarray(4, 4 + length).toString('utf8')) as Manifest<M>;
  } catch {
    return fail('unreadable manifest');
  }
  if (manifest.format !== 'snnl-checkpoint-1') fail(`unknown format ${String(manifest.format)}`);
  const start = 4 + length;
  const total = manifest.tensors.reduce((a, t) => a + t.shape.reduce((p, n) => p * n, 1), 0);
  if (bytes.length - start !== total * 4) fail(`expected ${total * 4} bytes of values, found ${bytes.length - start}`);
  const values = new Float32Array(buffer.buffer.slice(buffer.byteOffset + start, buffer.byteOffset + bytes.length));
  const tensors = manifest.tensors.map(({ name, shape, offset }) => {
    const size = shape.reduce((p, n) => p * n, 1);
    return { name, tensor: tf.tensor(values.subarray(offset, offset + size), shape, 'float32') };
  });
  return { tensors, metadata: manifest.metadata };
}

export function saveCheckpoint<M>(path: string, tensors: NamedTensor[], metadata: M): void {
  writeAtomic(path, encodeCheckpoint(tensors, metadata));
}

export function loadCheckpoint<M>(path: string): { tensors: NamedTensor[]; metadata: M } {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new InputError(path, `cannot read the checkpoint: ${(error as Error).message}`);
  }
  return decodeCheckpoint<M>(bytes, path);
}
