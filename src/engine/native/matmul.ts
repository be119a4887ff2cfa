/** BatchMatMul and the fused matMul (bias, ReLU) by ATen's GEMM. */
import { backend_util, type KernelConfig, type TensorInfo } from '@tensorflow/tfjs-core';
import { NATIVE_CODES } from '../../kernel-names.js';
import { kernel } from './kernel.js';

function matMulOutputShape(a: TensorInfo, b: TensorInfo, transposeA: boolean, transposeB: boolean): number[] {
  const outer = backend_util.assertAndGetBroadcastShape(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const m = transposeA ? a.shape.at(-1)! : a.shape.at(-2)!;
  const n = transposeB ? b.shape.at(-2)! : b.shape.at(-1)!;
  return [...outer, m, n];
}

export const matMulKernels = (): KernelConfig[] => [
  kernel('BatchMatMul', ({ inputs, backend, attrs }) => {
    const { a, b } = inputs as { a: TensorInfo; b: TensorInfo };
    const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
    const av = backend.floats(a);
    const bv = backend.floats(b);
    if (av === undefined || bv === undefined) return undefined;
    const shape = matMulOutputShape(a, b, transposeA, transposeB);
    return backend.output(shape, (out) =>
      backend.addon.matMul(out, av, a.shape, bv, b.shape, transposeA, transposeB, null, [], 0, shape),
    );
  }),
  kernel('_FusedMatMul', ({ inputs, backend, attrs }) => {
    const { a, b, bias, preluActivationWeights } = inputs as Record<string, TensorInfo | undefined>;
    const { transposeA, transposeB, activation } = attrs as {
      transposeA: boolean;
      transposeB: boolean;
      activation: string;
    };
    const code = (NATIVE_CODES.activation as Record<string, number>)[activation];
    const av = backend.floats(a!);
    const bv = backend.floats(b!);
    const biasValues = bias === undefined ? null : backend.floats(bias);
    if (code === undefined || preluActivationWeights !== undefined || !av || !bv || biasValues === undefined)
      return undefined;
    const shape = matMulOutputShape(a!, b!, transposeA, transposeB);
    return backend.output(shape, (out) =>
      backend.addon.matMul(
        out,
        av,
        a!.shape,
        bv,
        b!.shape,
        transposeA,
        transposeB,
        biasValues,
        bias?.shape ?? [],
        code,
        shape,
      ),
    );
  }),
];
