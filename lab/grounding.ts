/**
 * "Listen or guess?" (DESIGN.md §4): how much of the answer flows through the
 * audio pathway (cross-attention) versus the text pathway (the decoder's own
 * self-attention over the tokens so far).
 */
import * as tf from '@tensorflow/tfjs-core';
import { HookSession } from '../models/hook-session.ts';
import type { Whisper } from '../models/whisper.ts';
import { effectOf, metricOf } from './metrics.ts';
import { buildReplacements } from './patch.ts';
import { createRun, disposeRun, ensureHooks } from './runs.ts';
import type { PatchLab, SweepCost } from './sweep.ts';
import type { Metric, PatchSpec, Variant } from './spec.ts';

export interface GroundingPoint {
  /** Denoising effect of patching the clean cross-attention output (what the decoder hears). */
  A: number;
  /** Denoising effect of patching the clean self-attention output (what it reads). */
  T: number;
  /** A / (|A| + |T|): near 1 the answer comes from listening, near 0 from guessing. */
  gc: number;
  /** A / T, shown beside gc. */
  ratio: number;
}

export interface PathwayGrounding {
  metric: Metric;
  layers: (GroundingPoint & { layer: number })[];
  /** All layers' cross-attention outputs at once versus all self-attention outputs at once. */
  overall: GroundingPoint;
  cost: SweepCost;
}

export function groundingPoint(A: number, T: number): GroundingPoint {
  const denom = Math.abs(A) + Math.abs(T);
  return { A, T, gc: denom === 0 ? NaN : A / denom, ratio: T === 0 ? (A === 0 ? NaN : Math.sign(A) * Infinity) : A / T };
}

const at = (hook: string, position: number): PatchSpec => ({ hook, positions: [position], heads: null, source: { kind: 'clean' } });

/** Pathway grounding coefficient per decoder layer and overall, at the target position. */
export async function pathwayGrounding(lab: PatchLab, metric: Metric = 'logit_diff'): Promise<PathwayGrounding> {
  const L = lab.model.config.decoderLayers;
  const last = lab.inputs.prefix.length - 1;
  const label = (hook: string) => ({ hook, position: last, positionEnd: null, head: null });
  const variants: Variant[] = [];
  for (let l = 0; l < L; l++) {
    for (const part of ['cross_attn', 'self_attn'] as const) {
      const hook = `decoder.blocks.${l}.hook_${part}_out`;
      variants.push({ patches: [at(hook, last)], label: label(hook) });
    }
  }
  for (const part of ['cross_attn', 'self_attn'] as const) {
    const hooks = Array.from({ length: L }, (_, l) => `decoder.blocks.${l}.hook_${part}_out`);
    variants.push({ patches: hooks.map((h) => at(h, last)), label: label(`decoder.blocks.*.hook_${part}_out`) });
  }
  const r = await lab.runVariants(variants, 'denoise', metric);
  const e = r.results.map((x) => x.effect);
  return {
    metric,
    layers: Array.from({ length: L }, (_, l) => ({ layer: l, ...groundingPoint(e[2 * l], e[2 * l + 1]) })),
    overall: groundingPoint(e[2 * L], e[2 * L + 1]),
    cost: r.cost,
  };
}

export interface TokenGrounding extends GroundingPoint {
  /** Decoder position whose output predicts `token`. */
  position: number;
  token: number;
  clean: number;
  corrupt: number;
}

/**
 * Listen-vs-guess along a whole transcript: for each transcript token, the clean
 * cross-attention outputs (all layers) versus the clean self-attention outputs (all
 * layers) patched at that position into the corrupted-audio run, teacher-forced on the
 * clean transcript, measured on the token's log-prob at that position. One batched
 * decoder pass; the encoder and cross K/V are reused.
 */
export async function listenVsGuess(model: Whisper, cleanMel: Float32Array, corruptMel: Float32Array, prompt: readonly number[], transcript: readonly number[], metric: Extract<Metric, 'logprob' | 'prob'> = 'logprob'): Promise<TokenGrounding[]> {
  if (transcript.length === 0) return [];
  const prefix = [...prompt, ...transcript];
  const counter = { blockEvals: 0 };
  const clean = createRun(model, 'clean', cleanMel, prefix, counter);
  const corrupt = createRun(model, 'corrupt', corruptMel, prefix, counter);
  const L = model.config.decoderLayers;
  const hookNames = (part: string) => Array.from({ length: L }, (_, l) => `decoder.blocks.${l}.hook_${part}_out`);
  const all = [...hookNames('cross_attn'), ...hookNames('self_attn')];
  try {
    ensureHooks(model, clean, all, counter);
    // Positions whose logits predict transcript tokens: prompt.length − 1 … prefix.length − 2.
    const positions = transcript.map((_, i) => prompt.length - 1 + i);
    const variants: PatchSpec[][] = positions.flatMap((p) => [
      hookNames('cross_attn').map((h) => at(h, p)),
      hookNames('self_attn').map((h) => at(h, p)),
    ]);
    const hooks = new HookSession({ replace: buildReplacements(variants, { base: 'corrupt', valueOf: (_r, h) => clean.cache.get(h)! }) });
    const scores = tf.tidy(() => {
      const full = (run: typeof clean, h?: HookSession) => model.decodeFrom(0, model.decoderEmbed(run.tokens, 0, h ?? new HookSession()), run.cross, h ?? new HookSession());
      const patched = full(corrupt, hooks); // [2·n, T, vocab]
      const base = tf.concat([full(clean), full(corrupt)]); // [2, T, vocab]
      const pick = (logits: tf.Tensor3D) => {
        const lp = tf.logSoftmax(logits); // [B, T, vocab]
        const rows = positions.map((p, i) => tf.reshape(tf.slice(lp, [0, p, transcript[i]], [-1, 1, 1]), [-1]));
        const s = tf.stack(rows, 1); // [B, n]
        return metric === 'prob' ? tf.exp(s) : s;
      };
      return [pick(patched), pick(base)];
    });
    const [patchedData, baseData] = await Promise.all(scores.map((s) => s.data()));
    tf.dispose(scores);
    hooks.dispose();
    const n = transcript.length;
    return positions.map((position, i) => {
      const c = baseData[i];
      const k = baseData[n + i];
      const A = effectOf('denoise', patchedData[2 * i * n + i], c, k);
      const T = effectOf('denoise', patchedData[(2 * i + 1) * n + i], c, k);
      return { position, token: transcript[i], clean: c, corrupt: k, ...groundingPoint(A, T) };
    });
  } finally {
    disposeRun(clean);
    disposeRun(corrupt);
  }
}

export interface InputGrounding {
  metric: Metric;
  /** Metric change when the audio is corrupted (minimal pair), text held clean. */
  deltaAudio: number;
  /** Metric change when the text context is corrupted (prompt pair), audio held clean. */
  deltaText: number;
  gc: number;
  values: { clean: number; corruptAudio: number; corruptText: number };
}

/**
 * Input grounding coefficient: corrupt the audio in one condition and the decoder's
 * text context in the other; GC = Δ_audio / (|Δ_audio| + |Δ_text|) on the same metric
 * at the last position (same target and foil in all three runs).
 */
export async function inputGrounding(
  model: Whisper,
  args: { cleanMel: Float32Array; corruptMel: Float32Array; cleanPrefix: readonly number[]; corruptPrefix: readonly number[]; target: number; foil: number; metric?: Metric },
): Promise<InputGrounding> {
  const metric = args.metric ?? 'logit_diff';
  const counter = { blockEvals: 0 };
  const runs = [
    createRun(model, 'clean', args.cleanMel, args.cleanPrefix, counter),
    createRun(model, 'corrupt', args.corruptMel, args.cleanPrefix, counter),
    createRun(model, 'clean', args.cleanMel, args.corruptPrefix, counter),
  ];
  try {
    const cleanLogProbs = tf.tidy(() => tf.reshape(tf.logSoftmax(runs[0].lastLogits), [-1])) as tf.Tensor1D;
    const ctx = { target: args.target, foil: args.foil, cleanLogProbs };
    const vals: number[] = [];
    for (const r of runs) {
      const m = metricOf(metric, r.lastLogits, ctx);
      vals.push((await m.data())[0]);
      m.dispose();
    }
    cleanLogProbs.dispose();
    const [clean, corruptAudio, corruptText] = vals;
    const deltaAudio = clean - corruptAudio;
    const deltaText = clean - corruptText;
    const denom = Math.abs(deltaAudio) + Math.abs(deltaText);
    return { metric, deltaAudio, deltaText, gc: denom === 0 ? NaN : deltaAudio / denom, values: { clean, corruptAudio, corruptText } };
  } finally {
    runs.forEach(disposeRun);
  }
}
