/**
 * The fused SNNL kernels: the contract a backend implements to compute the loss's per-row values and its
 * closed-form gradient in one kernel each, instead of the ~60 small ops of the composed form. The loss
 * uses them when the backend in use registers both (snnl's native backend does) and the batch is one
 * block; otherwise it composes the same math from tfjs ops.
 *
 * SnnlFusedRows(x [b, d] float32, labels [b] int32; distance, temperature, epsilon) -> [rowLoss [b], K [b, b]]
 *   rowLoss: l_i, 0 for rows left out (log-sum-exp: rows without a same-class partner).
 *   K: dLoss/dD per unit row weight, so that with w_i = dLoss/dl_i, H = K * w (row i scaled by w_i) is
 *      dLoss/dD. For Euclidean distance K is already divided by 2 D (0 where D = 0), i.e. taken with
 *      respect to the squared distance. Its diagonal (dLoss/dD_ii = 0: a row is never its own neighbour)
 *      is the backend's own, for its backward kernel: the native backend keeps 1 / |x_i| there for cosine.
 * SnnlFusedRowsGrad(x, K, weights [b]; distance) -> dLoss/dX [b, d], with A = H + H^T:
 *   squared Euclidean / Euclidean: 2 (rowsum(A) c_i - (A C)_i), C the centred rows;
 *   cosine: (g_i - u_i (u_i . g_i)) / |x_i|, g = -A U, U the unit rows (norms floored at 1e-12).
 * epsilon < 0 selects the log-sum-exp formula, epsilon >= 0 the reference formula with that epsilon.
 */
import * as tf from '@tensorflow/tfjs-core';
import { SNNL_ROWS, SNNL_ROWS_GRAD, type SnnlFusedAttrs } from '../kernel-names.js';

export type { SnnlFusedAttrs };

/** Whether the backend in use has both fused kernels. */
export function fusedKernelsAvailable(): boolean {
  const backend = tf.getBackend();
  return tf.getKernel(SNNL_ROWS, backend) !== undefined && tf.getKernel(SNNL_ROWS_GRAD, backend) !== undefined;
}

export function fusedRows(x: tf.Tensor2D, labels: tf.Tensor1D, attrs: SnnlFusedAttrs): [tf.Tensor1D, tf.Tensor2D] {
  return tf.engine().runKernel(SNNL_ROWS, { x, labels }, attrs as never) as unknown as [tf.Tensor1D, tf.Tensor2D];
}

export function fusedRowsGrad(
  x: tf.Tensor2D,
  k: tf.Tensor2D,
  weights: tf.Tensor1D,
  attrs: SnnlFusedAttrs,
): tf.Tensor2D {
  return tf.engine().runKernel(SNNL_ROWS_GRAD, { x, k, weights }, attrs as never) as unknown as tf.Tensor2D;
}
