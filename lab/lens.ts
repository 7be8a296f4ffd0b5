/**
 * Lenses (DESIGN.md §4): what the model would answer if it stopped at layer l.
 * Logit lens: the decoder's final LayerNorm and tied unembedding applied to each
 * decoder block's residual stream. Encoder lens: an intermediate encoder layer's
 * residual stream, through the encoder's final LayerNorm, fed to the unchanged decoder.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HookSession } from '../models/hook-session.ts';
import type { Whisper } from '../models/whisper.ts';
import type { BaseRun } from './runs.ts';
import { ensureHooks } from './runs.ts';

export interface LensLayer {
  /** −1 = the embedding (decoder.hook_embed / encoder.hook_embed), then block indices. */
  layer: number;
  top: { token: number; prob: number }[];
  targetProb: number;
  foilProb: number;
  logitDiff: number;
}

export interface LensResult {
  kind: 'logit' | 'encoder';
  layers: LensLayer[];
  /** This run's real answer at the last position (for the corrupted run, usually the foil). */
  finalTop: number;
  /** First layer from which the lens's top-1 stays equal to this run's final answer; null if never. */
  saturationLayer: number | null;
  /**
   * Mean layer index weighted by the target's lens probability, over layers where it exceeds
   * the threshold; the embedding counts as layer −1, so the value can be negative.
   */
  criticalLayer: number | null;
  threshold: number;
}

export interface LensOptions {
  target: number;
  foil: number;
  topK?: number;
  /** Probability the target must reach for a layer to count toward the critical layer. */
  threshold?: number;
}

/** Logit lens on one base run at its last prefix position. */
export async function logitLens(model: Whisper, run: BaseRun, opts: LensOptions, counter = { blockEvals: 0 }): Promise<LensResult> {
  const L = model.config.decoderLayers;
  const names = ['decoder.hook_embed', ...Array.from({ length: L }, (_, l) => `decoder.blocks.${l}.hook_resid_post`)];
  ensureHooks(model, run, names, counter);
  const logits = tf.tidy(() => {
    const stacked = tf.concat(names.map((n) => run.cache.get(n)!)) as tf.Tensor3D; // [L+1, T, d]
    return tf.reshape(model.unembed(stacked, new HookSession(), true), [names.length, -1]) as tf.Tensor2D; // [L+1, vocab]
  });
  return summarize('logit', logits, run, opts);
}

/** Encoder lens: each encoder layer's output through ln_post into the unchanged decoder. */
export async function encoderLens(model: Whisper, run: BaseRun, opts: LensOptions, counter = { blockEvals: 0 }): Promise<LensResult> {
  const L = model.config.encoderLayers;
  const names = ['encoder.hook_embed', ...Array.from({ length: L }, (_, l) => `encoder.blocks.${l}.hook_resid_post`)];
  ensureHooks(model, run, names, counter);
  const logits = tf.tidy(() => {
    const stacked = tf.concat(names.map((n) => run.cache.get(n)!)) as tf.Tensor3D; // [L+1, S, d]
    const encoderOut = model.encodeFrom(L, stacked); // ln_post only
    const cross = model.crossKV(encoderOut);
    const out = model.decodeFrom(0, model.decoderEmbed(run.tokens, 0, new HookSession()), cross, new HookSession(), true);
    return tf.reshape(out, [names.length, -1]) as tf.Tensor2D;
  });
  counter.blockEvals += names.length * model.config.decoderLayers;
  return summarize('encoder', logits, run, opts);
}

async function summarize(kind: LensResult['kind'], logits: tf.Tensor2D, run: BaseRun, opts: LensOptions): Promise<LensResult> {
  const topK = opts.topK ?? 5;
  const threshold = opts.threshold ?? 0.05;
  const [probs, top, finalTopT] = tf.tidy(() => {
    const p = tf.softmax(logits);
    return [p, tf.topk(p, topK), tf.argMax(run.lastLogits, -1)] as const;
  });
  const [pData, vals, idx, lg, finalTop] = await Promise.all([probs.data(), top.values.data(), top.indices.data(), logits.data(), finalTopT.data()]);
  const V = logits.shape[1];
  tf.dispose([probs, top.values, top.indices, finalTopT, logits]);
  const n = lg.length / V;
  const layers: LensLayer[] = Array.from({ length: n }, (_, i) => ({
    layer: i - 1,
    top: Array.from({ length: topK }, (_, k) => ({ token: idx[i * topK + k], prob: vals[i * topK + k] })),
    targetProb: pData[i * V + opts.target],
    foilProb: pData[i * V + opts.foil],
    logitDiff: lg[i * V + opts.target] - lg[i * V + opts.foil],
  }));
  return {
    kind,
    layers,
    finalTop: finalTop[0],
    saturationLayer: saturationLayer(layers.map((l) => l.top[0].token), finalTop[0], layers.map((l) => l.layer)),
    criticalLayer: criticalLayer(layers.map((l) => l.layer), layers.map((l) => l.targetProb), threshold),
    threshold,
  };
}

/** First layer from which every later layer's top-1 equals the final answer. */
export function saturationLayer(top1: readonly number[], final: number, layerIds: readonly number[]): number | null {
  let from: number | null = null;
  for (let i = top1.length - 1; i >= 0; i--) {
    if (top1[i] !== final) break;
    from = layerIds[i];
  }
  return from;
}

/** Σ l·p_l / Σ p_l over layers with p_l > threshold; null when none passes. */
export function criticalLayer(layerIds: readonly number[], targetProbs: readonly number[], threshold: number): number | null {
  let num = 0;
  let den = 0;
  targetProbs.forEach((p, i) => {
    if (p > threshold) {
      num += layerIds[i] * p;
      den += p;
    }
  });
  return den === 0 ? null : num / den;
}
