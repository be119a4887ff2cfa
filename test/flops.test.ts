/**
 * The benchmark's arithmetic counts, by hand: the MLP's and a small convolutional model's forward products,
 * a training step's count with SNNL, and the host description.
 */
import * as tf from '@tensorflow/tfjs';
import { beforeAll, describe, expect, it } from 'vitest';
import { forwardFlops, processor, trainingFlops } from '../src/bench/flops.js';
import { buildNetwork } from '../src/models/models.js';
import { onBackend } from './helpers.js';

beforeAll(() => onBackend('cpu'));

describe('benchmark floors', () => {
  it('count 2 x multiply-adds of Dense and convolution layers per image', () => {
    const mlp = buildNetwork('mlp', [28, 28, 1], 10, 1);
    expect(forwardFlops(mlp.model)).toBe(2 * (784 * 500 + 500 * 500 + 500 * 10));
    // 3 x forward, plus SNNL's two b x b x d products per example on each layer of width d.
    expect(trainingFlops(mlp.model, [500, 500], 128)).toBe(3 * forwardFlops(mlp.model) + 2 * 4 * 128 * 500);
    mlp.model.dispose();
    const input = tf.input({ shape: [8, 8, 3] });
    const conv = tf.layers.conv2d({ filters: 4, kernelSize: 3, padding: 'same' }).apply(input) as tf.SymbolicTensor;
    const up = tf.layers.conv2dTranspose({ filters: 2, kernelSize: 2, strides: 2 }).apply(conv) as tf.SymbolicTensor;
    const model = tf.model({ inputs: input, outputs: up });
    expect(forwardFlops(model)).toBe(2 * 8 * 8 * 9 * 3 * 4 + 2 * 8 * 8 * 4 * 4 * 2);
    model.dispose();
  });

  it('describe the host: a model name, an instruction-set level, cores', () => {
    const host = processor();
    expect(host.model.length).toBeGreaterThan(0);
    expect(['AVX-512', 'AVX2', 'AVX', 'SSE4.2', 'NEON', 'unknown']).toContain(host.isa);
    expect(host.cores).toBeGreaterThan(0);
  });
});
