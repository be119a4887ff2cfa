/** MaxPoolGrad on wasm: MaxPoolWithArgmax finds each window's maximum, ScatterNd adds dy there. */
import {
  MaxPoolGrad,
  MaxPoolWithArgmax,
  ScatterNd,
  Reshape,
  type KernelConfig,
  type KernelFunc,
} from '@tensorflow/tfjs-core';
import { originalConfig, sizeOf, Composer } from './heap.js';
interface PoolAttrs {
  filterSize: number | [number, number];
  strides: number | [number, number];
  pad: 'valid' | 'same' | number;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function maxPoolGradConfig(): KernelConfig {
  const stock = originalConfig(MaxPoolGrad);
  const kernelFunc: KernelFunc = (args) => {
    const { inputs, backend, attrs } = args;
    const a = attrs as unknown as PoolAttrs;
    // MaxPoolWithArgmax takes no rounding mode: leave those rare calls to the stock kernel.
    if (a.dimRoundingMode !== undefined) return stock.kernelFunc(args);
    const c = new Composer(backend);
    const input = inputs['input']!;
    const dy = inputs['dy']!;
    const size = sizeOf(input);
    const [, where] = c.runAll(
      MaxPoolWithArgmax,
      { x: input },
      { filterSize: a.filterSize, strides: a.strides, pad: a.pad, includeBatchInIndex: true },
    );
    const indices = c.run(Reshape, { x: where! }, { shape: [sizeOf(dy), 1] });
    const updates = c.run(Reshape, { x: dy }, { shape: [sizeOf(dy)] });
    const scattered = c.run(ScatterNd, { indices, updates }, { shape: [size] });
    return c.finish(c.run(Reshape, { x: scattered }, { shape: input.shape }));
  };
  return { kernelName: MaxPoolGrad, backendName: 'wasm', kernelFunc };
}
