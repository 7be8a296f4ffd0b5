/**
 * Linear CKA (Kornblith et al. 2019) between layers' residual streams, for the
 * "which layer commits" question: CKA(X, Y) = ‖Yᵀ X‖²_F / (‖Xᵀ X‖_F ‖Yᵀ Y‖_F) with
 * X, Y [positions, d] centred over positions.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Whisper } from '../models/whisper.ts';
import { ensureHooks, type BaseRun } from './runs.ts';

export interface CkaResult {
  stack: 'encoder' | 'decoder';
  /** Row/column labels: the embedding then each block's resid_post. */
  labels: string[];
  /** Symmetric [n][n] matrix, 1 on the diagonal. */
  matrix: number[][];
  /** Positions used ([start, end)), e.g. the clip and not the window's silent padding. */
  positions: [number, number];
}

export function linearCka(x: tf.Tensor2D, y: tf.Tensor2D): tf.Scalar {
  return tf.tidy(() => {
    const xc = tf.sub(x, tf.mean(x, 0, true));
    const yc = tf.sub(y, tf.mean(y, 0, true));
    const cross = tf.sum(tf.square(tf.matMul(yc, xc, true, false)));
    const xx = tf.norm(tf.matMul(xc, xc, true, false));
    const yy = tf.norm(tf.matMul(yc, yc, true, false));
    return tf.div(cross, tf.mul(xx, yy)) as tf.Scalar;
  });
}

/** CKA between all residual streams of one stack of one run. */
export async function layerCka(model: Whisper, run: BaseRun, stack: 'encoder' | 'decoder', positions?: [number, number]): Promise<CkaResult> {
  const L = stack === 'encoder' ? model.config.encoderLayers : model.config.decoderLayers;
  const names = [`${stack}.hook_embed`, ...Array.from({ length: L }, (_, l) => `${stack}.blocks.${l}.hook_resid_post`)];
  ensureHooks(model, run, names, { blockEvals: 0 });
  const total = run.cache.get(names[0])!.shape[1]!;
  const [lo, hi] = positions ?? [0, total];
  const streams = names.map((n) => tf.tidy(() => {
    const t = run.cache.get(n)! as tf.Tensor3D;
    return tf.reshape(tf.slice(t, [0, lo, 0], [1, hi - lo, -1]), [hi - lo, -1]) as tf.Tensor2D;
  }));
  const matrix: number[][] = names.map(() => new Array(names.length).fill(1));
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const s = linearCka(streams[i], streams[j]);
      matrix[i][j] = matrix[j][i] = (await s.data())[0];
      s.dispose();
    }
  }
  tf.dispose(streams);
  return { stack, labels: names, matrix, positions: [lo, hi] };
}
