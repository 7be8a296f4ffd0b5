/**
 * Attribution patching (DESIGN.md §4): a first-order estimate of every denoising
 * patch at once, effect ≈ (a_clean − a_corrupt) · ∂LD/∂a at the corrupted run, for
 * every chosen hook and position from the two cached runs and one backward pass.
 * The top candidates are then patched for real and the agreement reported.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EarshotError } from '../models/errors.ts';
import { HookSession } from '../models/hook-session.ts';
import { expandHookPatterns } from '../models/hooks.ts';
import { ensureGradients } from './gradients.ts';
import { hookGeometry } from './patch.ts';
import { ensureHooks } from './runs.ts';
import type { PatchLab, PatchResult } from './sweep.ts';
import type { Variant } from './spec.ts';

export interface AttributionEntry {
  hook: string;
  position: number;
  /** Estimated normalised denoising effect. */
  estimate: number;
  /** The real patch's effect, for the verified top candidates. */
  real?: number;
}

export interface AttributionResult {
  entries: AttributionEntry[];
  /** The top candidates by |estimate|, patched for real. */
  verified: AttributionEntry[];
  /** Spearman rank correlation of estimate and real effect over the verified candidates. */
  spearman: number;
  /** Pearson correlation over the same. */
  pearson: number;
  /** Forward passes and backward passes spent (the verification patches not included). */
  passes: { forward: number; backward: number };
}

export async function attributionPatching(lab: PatchLab, patterns: string[], opts: { topK?: number; encoderRange?: [number, number] } = {}): Promise<AttributionResult> {
  await ensureGradients();
  const model = lab.model;
  const c = model.config;
  const names = expandHookPatterns(patterns, c).filter((n) => n !== 'hook_logits');
  const { target, foil } = lab.inputs;
  for (const r of ['clean', 'corrupt'] as const) ensureHooks(model, lab.runs[r], names, lab.counter);
  const run = lab.runs.corrupt;
  const span = lab.baseMetric('clean', 'logit_diff') - lab.baseMetric('corrupt', 'logit_diff');
  if (span === 0) throw new EarshotError('The clean and corrupted runs give the same logit difference, so there is no effect to attribute; pick another target and foil.', 'no-effect');

  // ∂LD/∂a at every hook: add a zero "delta" at each hook and differentiate with respect to it.
  const deltas = names.map((n) => tf.zerosLike(run.cache.get(n)!));
  const logitDiff = (...ds: tf.Tensor[]) => {
    const replace = new Map(names.map((n, i) => [n, (v: tf.Tensor) => tf.add(v, ds[i])]));
    const hooks = new HookSession({ replace });
    const encoderOut = model.encode(run.mel, hooks);
    const cross = model.crossKV(encoderOut, hooks);
    const logits = model.decodeFrom(0, model.decoderEmbed(run.tokens, 0, hooks), cross, hooks, true); // [1, 1, vocab]
    const row = tf.reshape(logits, [-1]);
    // slice, not gather: gather's gradient needs UnsortedSegmentSum, which tfjs-wasm lacks.
    return tf.reshape(tf.sub(tf.slice(row, [target], [1]), tf.slice(row, [foil], [1])), []) as tf.Scalar;
  };
  const grads = tf.grads(logitDiff)(deltas);
  tf.dispose(deltas);

  const entries: AttributionEntry[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    const posAxis = 1 + hookGeometry(name).posAxis;
    const perPos = tf.tidy(() => {
      const diff = tf.sub(lab.runs.clean.cache.get(name)!, run.cache.get(name)!);
      const prod = tf.mul(diff, grads[i]);
      const others = prod.shape.map((_, a) => a).filter((a) => a !== posAxis);
      return tf.sum(prod, others);
    });
    const values = await perPos.data();
    perPos.dispose();
    values.forEach((v, position) => entries.push({ hook: name, position, estimate: v / span }));
  }
  tf.dispose(grads);

  const inRange = (e: AttributionEntry) => {
    if (!opts.encoderRange || !(e.hook.startsWith('encoder.') || /cross_attn\.hook_[kv]$/.test(e.hook))) return true;
    const scale = e.hook === 'encoder.hook_input' ? 2 : 1;
    return e.position >= opts.encoderRange[0] * scale && e.position < opts.encoderRange[1] * scale;
  };
  const shown = entries.filter(inRange);
  const topK = Math.min(opts.topK ?? 20, shown.length);
  const verified = [...shown].sort((a, b) => Math.abs(b.estimate) - Math.abs(a.estimate)).slice(0, topK);
  const variants: Variant[] = verified.map((e) => ({
    patches: [{ hook: e.hook, positions: [e.position], heads: null, source: { kind: 'clean' } }],
    label: { hook: e.hook, position: e.position, positionEnd: null, head: null },
  }));
  const real: PatchResult[] = (await lab.runVariants(variants, 'denoise', 'logit_diff')).results;
  verified.forEach((e, k) => (e.real = real[k].effect));
  const est = verified.map((e) => e.estimate);
  const act = verified.map((e) => e.real!);
  return { entries: shown, verified, spearman: pearson(ranks(est), ranks(act)), pearson: pearson(est, act), passes: { forward: 1, backward: 1 } };
}

export function ranks(xs: readonly number[]): number[] {
  const order = xs.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const r = new Array<number>(xs.length);
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && order[j + 1][0] === order[i][0]) j++;
    for (let k = i; k <= j; k++) r[order[k][1]] = (i + j) / 2; // ties share the mean rank
    i = j + 1;
  }
  return r;
}

export function pearson(a: readonly number[], b: readonly number[]): number {
  const n = a.length;
  if (n < 2) return NaN;
  const ma = a.reduce((s, x) => s + x, 0) / n;
  const mb = b.reduce((s, x) => s + x, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return saa === 0 || sbb === 0 ? NaN : sab / Math.sqrt(saa * sbb);
}
