/**
 * ReLU's gradient as one kernel where a backend has it. tfjs-core's gradient is
 * mul(dy, cast(step(x), 'float32')): three passes and three dispatches (Step, Cast, Multiply; 3 ms of a
 * CNN training step on wasm for the first layer alone). The gradient registered here runs
 * SnnlReluGrad(dy, x) = dy * step(x), the same values element for element (step(NaN) is NaN), on a
 * backend that registers it, and tfjs-core's composition everywhere else. SnnlReluGrad has its own
 * gradient, so that second derivatives through ReLU still work.
 */
import * as tf from '@tensorflow/tfjs-core';
import { RELU_GRAD } from '../kernel-names.js';

const hasKernel = () => tf.getKernel(RELU_GRAD, tf.getBackend()) !== undefined;

/** dy * step(x), by the fused kernel where the backend has one (float32 operands of one shape). */
export function reluGrad(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  const plain = dy.dtype === 'float32' && x.dtype === 'float32' && tf.util.arraysEqual(dy.shape, x.shape);
  if (plain && hasKernel()) return tf.engine().runKernel(RELU_GRAD, { dy, x }) as tf.Tensor;
  return tf.mul(dy, tf.cast(tf.step(x), 'float32'));
}

let registered = false;

/**
 * Registers snnl's gradients (idempotent): ReLU's, SnnlReluGrad's own, and LeakyReLU's as dy * step(x, alpha)
 * (two passes that native and wasm run in their own kernels) instead of tfjs-core's
 * where(greater(x, 0), dy, dy * alpha) (four, of which Greater and Select fall back to JavaScript on
 * native: 60 of a GAN step's 190 ms). The same values, except that a NaN input gives a NaN gradient.
 */
export function registerGradients(): void {
  if (registered) return;
  tf.registerGradient({
    kernelName: tf.LeakyRelu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs) => {
      const [x] = saved as [tf.Tensor];
      const { alpha } = attrs as unknown as { alpha: number };
      return { x: () => tf.mul(dy as tf.Tensor, tf.step(x, alpha)) };
    },
  });
  tf.registerGradient({
    kernelName: tf.Relu,
    inputsToSave: ['x'],
    gradFunc: (dy, saved) => {
      const [x] = saved as [tf.Tensor];
      return { x: () => reluGrad(dy as tf.Tensor, x) };
    },
  });
  tf.registerGradient({
    kernelName: RELU_GRAD,
    inputsToSave: ['x'],
    gradFunc: (ddx, saved) => {
      const [x] = saved as [tf.Tensor];
      return { dy: () => reluGrad(ddx as tf.Tensor, x), x: () => tf.zerosLike(x) };
    },
  });
  registered = true;
}
