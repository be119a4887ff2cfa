/**
 * The two ways of turning distances into the per-point loss l_i.
 *
 * log-sum-exp (snnl's stable default), with logits L_ij = -D_ij / T for j != i:
 *     l_i = logsumexp_{j != i} L_ij - logsumexp_{j != i, y_j = y_i} L_ij
 *   Points with no same-class partner have no defined l_i: they are left out of the mean.
 *
 * epsilon (the paper's reference code, cleverhans `SNNLCrossEntropy`, and its PyTorch port pt-snnl):
 *     f_ij = exp(-D_ij / T) - [i = j],  m_i = sum_{y_j = y_i} f_ij / (eps + sum_j f_ij),
 *     l_i = -log(eps + m_i)
 *   Every point counts; one with no same-class partner contributes -log(eps).
 *
 * For the gradient each formula gives H = dLoss/dD for a block of rows from the per-row statistics its
 * forward pass kept, reusing the forward's b x B matrices (`cache`) when it has them. Statistics and row
 * weights may be shaped [rows, 1] (giving H's rows) or [1, b] (giving H^T's rows, since D is symmetric).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { RowBlock } from './distance.js';
import { asFlat } from './shape.js';

/** A block of rows with the masks a formula needs. */
export type FormulaBlock = RowBlock & {
  /** 1 where y_j = y_i and j != i (float32, rows x b). */
  partners: tf.Tensor2D;
  /** 0 where j != i, -inf on the diagonal (rows x b). */
  offDiagonalBias: tf.Tensor2D;
  /** 0 where y_j = y_i and j != i, else -inf (rows x b). */
  partnersBias: tf.Tensor2D;
  /** 1 for rows that have at least one partner (float32, rows x 1). */
  hasPartner: tf.Tensor2D;
};

export interface RowResult {
  /** l_i for the block's rows, 0 for rows left out of the mean ([rows]). */
  loss: tf.Tensor1D;
  /** Per-row statistics the gradient needs, each [rows]. */
  stats: tf.Tensor1D[];
  /** rows x b matrices of the forward pass that spare the gradient recomputing them. */
  cache: tf.Tensor2D[];
}

export interface Formula {
  /** Whether rows without a same-class partner are left out of the mean (else they count). */
  readonly dropsRowsWithoutPartner: boolean;
  /** Whether each row's term has an upper bound (what maximizing it, to entangle, needs). */
  readonly bounded: boolean;
  /** How the fused kernels (fused.ts) name this formula: -1 for log-sum-exp, else the epsilon. */
  readonly fusedEpsilon: number;
  rows(distances: tf.Tensor2D, temperature: number, block: FormulaBlock): RowResult;
  /**
   * dLoss/dD for the block (H's rows, or H^T's, see the header), where `stats` and `weights` (dLoss/dl)
   * are shaped [rows, 1] or [1, b]. `cache` (from `rows`, row-shaped statistics only) skips recomputing.
   */
  gradient(
    distances: tf.Tensor2D,
    temperature: number,
    block: FormulaBlock,
    stats: tf.Tensor[],
    weights: tf.Tensor,
    cache?: tf.Tensor2D[],
  ): tf.Tensor2D;
}

export const logSumExp: Formula = {
  dropsRowsWithoutPartner: true,
  bounded: false,
  fusedEpsilon: -1,
  rows(distances, temperature, block) {
    const logits = tf.mul(distances, -1 / temperature);
    const valid = tf.cast(block.hasPartner, 'bool');
    // Softmax over the unmasked entries of each row; its log-normalizer is the row's log-sum-exp.
    // A row with no unmasked entry (no partner) is shifted by 0 and normalized by 1: it gives zeros.
    const softmax = (bias: tf.Tensor2D, guard: boolean) => {
      const masked = tf.add(logits, bias);
      let max = tf.max(masked, 1, true);
      if (guard) max = tf.where(valid, max, tf.zerosLike(max));
      const e = tf.exp(tf.sub(masked, max));
      let sum = tf.sum(e, 1, true);
      if (guard) sum = tf.where(valid, sum, tf.onesLike(sum));
      return { p: tf.div(e, sum) as tf.Tensor2D, lse: tf.add(max, tf.log(sum)) };
    };
    const all = softmax(block.offDiagonalBias, false);
    const partners = softmax(block.partnersBias, true);
    const loss = asFlat(tf.where(valid, tf.sub(all.lse, partners.lse), tf.zerosLike(all.lse)));
    return { loss, stats: [asFlat(all.lse), asFlat(partners.lse)], cache: [all.p, partners.p] };
  },
  // dLoss/dL_ij = w_i (P_ij - Q_ij): P the softmax over all j != i, Q over partners; H = -dLoss/dL / T.
  gradient(distances, temperature, block, [all, partners], weights, cache) {
    let p: tf.Tensor;
    let q: tf.Tensor;
    if (cache !== undefined) {
      [p, q] = cache as [tf.Tensor, tf.Tensor];
    } else {
      const logits = tf.mul(distances, -1 / temperature);
      p = tf.exp(tf.sub(tf.add(logits, block.offDiagonalBias), all!));
      q = tf.exp(tf.sub(tf.add(logits, block.partnersBias), partners!));
    }
    return tf.mul(tf.sub(q, p), tf.div(weights, temperature)) as tf.Tensor2D;
  },
};

/** The reference implementations' formula, with their epsilon (1e-5 in both). */
export function epsilonFormula(epsilon: number): Formula {
  const fits = (distances: tf.Tensor2D, temperature: number, block: RowBlock) =>
    tf.mul(tf.exp(tf.mul(distances, -1 / temperature)), block.offDiagonal) as tf.Tensor2D;
  return {
    dropsRowsWithoutPartner: false,
    // -log(epsilon + ...) <= -log(epsilon).
    bounded: true,
    fusedEpsilon: epsilon,
    rows(distances, temperature, block) {
      const f = fits(distances, temperature, block);
      const total = tf.sum(f, 1);
      const picked = tf.div(tf.sum(tf.mul(f, block.partners), 1), tf.add(total, epsilon));
      const loss = tf.neg(tf.log(tf.add(picked, epsilon))) as tf.Tensor1D;
      return { loss, stats: [total as tf.Tensor1D, picked as tf.Tensor1D], cache: [f] };
    },
    // dl_i/dD_ij = f_ij (M_ij - m_i) / (T (eps + m_i) (eps + s_i)), M_ij = [y_j = y_i], j != i.
    gradient(distances, temperature, block, [total, picked], weights, cache) {
      const f = cache?.[0] ?? fits(distances, temperature, block);
      const scale = tf.div(weights, tf.mul(tf.add(picked!, epsilon), tf.mul(tf.add(total!, epsilon), temperature)));
      // Scale first: f can be tiny, and f * (M - m) alone would sink into slow subnormal floats.
      return tf.mul(tf.mul(f, scale), tf.sub(block.partners, picked!)) as tf.Tensor2D;
    },
  };
}
