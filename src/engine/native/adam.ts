/** Adam's update of one variable (src/kernel-names.ts) by one C++ pass. */
import type { KernelConfig } from '@tensorflow/tfjs-core';
import { FUSED_ADAM, FUSED_ADAM_INPUTS, type FusedAdamAttrs } from '../../kernel-names.js';
import type { NativeBackend } from './backend.js';

export const adamKernel = (): KernelConfig => ({
  kernelName: FUSED_ADAM,
  backendName: 'native',
  kernelFunc: ({ inputs, backend: b, attrs }) => {
    const backend = b as NativeBackend;
    const order = FUSED_ADAM_INPUTS.map((key) => inputs[key]!);
    const [value, m, v, g] = order.map((t) => backend.floats(t)!);
    const a = attrs as unknown as FusedAdamAttrs;
    const outs = [0, 1, 2].map(() => backend.allocate(g!.length));
    const { beta1, beta2, learningRate, epsilon, correction1, correction2 } = a;
    backend.addon.adam(
      outs[0]!,
      outs[1]!,
      outs[2]!,
      value!,
      m!,
      v!,
      g!,
      beta1,
      beta2,
      learningRate,
      epsilon,
      correction1,
      correction2,
    );
    return outs.map((o) => backend.makeTensorInfo(order[0]!.shape, 'float32', o));
  },
});
