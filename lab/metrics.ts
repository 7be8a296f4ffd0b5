/**
 * Metrics on the logits at the last prefix position, and normalised effects
 * (DESIGN.md §4). Everything here is batched over patched variants.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Direction, Metric } from './spec.ts';

export interface MetricContext {
  target: number;
  foil: number;
  /** log-softmax of the clean run at the last position [vocab], for KL to clean. */
  cleanLogProbs: tf.Tensor1D;
}

/** Metric per variant from last-position logits [B, vocab] → [B]. */
export function metricOf(metric: Metric, logits: tf.Tensor2D, ctx: MetricContext): tf.Tensor1D {
  return tf.tidy(() => {
    switch (metric) {
      case 'logit_diff':
        return tf.sub(column(logits, ctx.target), column(logits, ctx.foil));
      case 'logprob':
        return column(tf.logSoftmax(logits), ctx.target);
      case 'prob':
        return tf.exp(column(tf.logSoftmax(logits), ctx.target));
      case 'kl': {
        // KL(P_clean ‖ P_run) = Σ p_clean (log p_clean − log p_run)
        const pClean = tf.exp(ctx.cleanLogProbs);
        return tf.sum(tf.mul(pClean, tf.sub(ctx.cleanLogProbs, tf.logSoftmax(logits))), -1);
      }
      default: {
        const never: never = metric;
        throw new Error(`unknown metric ${String(never)}`);
      }
    }
  });
}

function column(m: tf.Tensor2D, index: number): tf.Tensor1D {
  return tf.reshape(tf.slice(m, [0, index], [-1, 1]), [-1]);
}

/**
 * Normalised effect: denoise (m − m_corrupt)/(m_clean − m_corrupt), 0 = no recovery, 1 = full;
 * noise (m_clean − m)/(m_clean − m_corrupt), 1 = the swap alone destroys the answer.
 * NaN when clean and corrupt agree (nothing to recover), which the UI shows as such.
 */
export function effectOf(direction: Direction, value: number, clean: number, corrupt: number): number {
  const span = clean - corrupt;
  if (span === 0) return NaN;
  return direction === 'denoise' ? (value - corrupt) / span : (clean - value) / span;
}
