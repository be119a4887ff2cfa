import * as tf from '@tensorflow/tfjs';
import { describe, expect, it } from 'vitest';
import { FusedAdamOptimizer } from '../src/training/optimizer.js';
import { BACKENDS_UNDER_TEST, onBackend } from './helpers.js';
import { setSplitThreshold, SPLIT_AT } from '../src/engine/wasm/simd/runtime.js';
import { seeded } from './oracle.js';

/** Values of two variables after `steps` Adam steps on a small least-squares problem. */
function trainWith(optimizer: tf.Optimizer, steps: number): number[][] {
  const random = seeded(51);
  const w = tf.variable(
    tf.tensor2d(
      Array.from({ length: 12 }, () => random() - 0.5),
      [4, 3],
    ),
  );
  const b = tf.variable(tf.tensor1d([0.1, -0.2, 0.3]));
  const x = tf.tensor2d(
    Array.from({ length: 20 }, () => random()),
    [5, 4],
  );
  const y = tf.tensor2d(
    Array.from({ length: 15 }, () => random()),
    [5, 3],
  );
  for (let s = 0; s < steps; s++) {
    optimizer.minimize(() => tf.mean(tf.square(tf.sub(tf.add(tf.matMul(x, w), b), y))) as tf.Scalar);
  }
  const out = [Array.from(w.dataSync()), Array.from(b.dataSync())];
  tf.dispose([w, b, x, y]);
  return out;
}

for (const backend of BACKENDS_UNDER_TEST) {
  describe(`fused Adam on ${backend}`, () => {
    it('takes the same steps as tfjs Adam', async () => {
      await onBackend(backend);
      const reference = trainWith(tf.train.adam(0.05), 7);
      const fused = trainWith(new FusedAdamOptimizer(0.05), 7);
      fused.flat().forEach((v, k) => expect(v).toBeCloseTo(reference.flat()[k]!, 5));
    });

    it('takes the same steps as tfjs Adam on a variable large enough to be split between two threads, with a tail', async () => {
      await onBackend(backend);
      const random = seeded(52);
      const start = Float32Array.from({ length: 301 * 299 }, () => random() - 0.5);
      const target = tf.tensor2d(
        Float32Array.from(start, (v) => v * 0.5 + 0.1),
        [301, 299],
      );
      const run = (optimizer: tf.Optimizer) => {
        const w = tf.variable(tf.tensor2d(start, [301, 299]));
        for (let s = 0; s < 3; s++) optimizer.minimize(() => tf.sum(tf.square(tf.sub(w, target))) as tf.Scalar);
        const out = w.dataSync().slice();
        w.dispose();
        return out;
      };
      const reference = run(tf.train.adam(0.01));
      // On wasm, split with the helper thread from 4096 elements (the default is larger than this test).
      setSplitThreshold(1 << 12);
      let fused: Float32Array | Int32Array | Uint8Array;
      try {
        fused = run(new FusedAdamOptimizer(0.01));
      } finally {
        setSplitThreshold(SPLIT_AT);
      }
      let worst = 0;
      fused.forEach((v, k) => (worst = Math.max(worst, Math.abs(v - reference[k]!))));
      expect(worst).toBeLessThan(1e-6);
      // Both halves moved: the first and the last element changed.
      expect(fused[0]).not.toBe(start[0]);
      expect(fused[fused.length - 1]).not.toBe(start[start.length - 1]);
      target.dispose();
    });

    it('keeps the state tf.train.adam keeps, and leaks nothing', async () => {
      await onBackend(backend);
      const optimizer = new FusedAdamOptimizer(0.01);
      const w = tf.variable(tf.ones([3, 2]));
      const loss = () => tf.sum(tf.square(w)) as tf.Scalar;
      optimizer.minimize(loss);
      const before = tf.memory().numTensors;
      optimizer.minimize(loss);
      expect(tf.memory().numTensors).toBe(before);
      const state = await optimizer.getWeights();
      expect(state.map((s) => s.name)).toEqual(['iter', `${w.name}/m`, `${w.name}/v`]);
      expect(state[0]!.tensor.dataSync()[0]).toBe(2);
      tf.dispose([w, state[0]!.tensor]);
      optimizer.dispose();
    });
  });
}
