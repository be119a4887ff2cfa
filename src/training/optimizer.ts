/**
 * Adam with the fused update kernel where the backend in use registers it (src/engine/backend.ts does,
 * for native, wasm and cpu), tfjs's own update elsewhere.
 * Same state and serialization as tf.train.adam (getWeights / setWeights), so checkpoints are unchanged.
 */
import * as tf from '@tensorflow/tfjs';
import { FUSED_ADAM, type FusedAdamAttrs } from '../kernel-names.js';

interface AdamState {
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  iterations_: number | undefined;
  beta1: number;
  beta2: number;
  learningRate: number;
  epsilon: number;
}

export class FusedAdamOptimizer extends tf.AdamOptimizer {
  constructor(learningRate: number, beta1 = 0.9, beta2 = 0.999) {
    super(learningRate, beta1, beta2);
  }

  override applyGradients(variableGradients: Parameters<tf.AdamOptimizer['applyGradients']>[0]): void {
    if (!tf.getKernel(FUSED_ADAM, tf.getBackend())) return super.applyGradients(variableGradients);
    const self = this as unknown as AdamState;
    const list = Array.isArray(variableGradients)
      ? variableGradients
      : Object.entries(variableGradients).map(([name, tensor]) => ({ name, tensor: tensor as tf.Tensor }));
    const step = (self.iterations_ ?? 0) + 1;
    const attrs: FusedAdamAttrs = {
      beta1: self.beta1,
      beta2: self.beta2,
      learningRate: self.learningRate,
      epsilon: self.epsilon,
      correction1: 1 - Math.pow(self.beta1, step),
      correction2: 1 - Math.pow(self.beta2, step),
    };
    tf.tidy(() => {
      list.forEach(({ name, tensor: gradient }, i) => {
        const value = tf.engine().registeredVariables[name]!;
        const slot = (which: 'm' | 'v') => ({
          originalName: `${name}/${which}`,
          variable: tf.tidy(() => tf.zerosLike(value).variable(false)),
        });
        self.accumulatedFirstMoment[i] ??= slot('m');
        self.accumulatedSecondMoment[i] ??= slot('v');
        if (gradient == null) return;
        const m = self.accumulatedFirstMoment[i]!.variable;
        const v = self.accumulatedSecondMoment[i]!.variable;
        const [newValue, newM, newV] = tf
          .engine()
          .runKernel(FUSED_ADAM, { value, m, v, gradient }, attrs as never) as tf.Tensor[];
        m.assign(newM!);
        v.assign(newV!);
        value.assign(newValue!);
      });
      // Keep tfjs's own bookkeeping as its update would leave it.
      self.accBeta1.assign(tf.scalar(Math.pow(self.beta1, step + 1)));
      self.accBeta2.assign(tf.scalar(Math.pow(self.beta2, step + 1)));
    });
    this.incrementIterations();
  }
}
