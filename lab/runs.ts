/**
 * The two unpatched runs every experiment compares: clean and corrupted, each
 * run once, their encoder output, cross-attention K/V and last-position logits
 * kept on the device, plus a cache of exactly the hooks a sweep needs.
 */
import * as tf from '@tensorflow/tfjs-core';
import { HookSession } from '../models/hook-session.ts';
import type { KV, Whisper } from '../models/whisper.ts';
import type { RunName } from './spec.ts';

export interface BaseRun {
  name: RunName;
  mel: tf.Tensor3D; // [1, n_mels, frames]
  tokens: tf.Tensor2D; // [1, T]
  encoderOut: tf.Tensor3D; // [1, S, d]
  cross: KV[]; // per decoder block, [1, H, S, dh]
  lastLogits: tf.Tensor2D; // [1, vocab]
  /** Hook values of this run, batch axis 1. Grows on demand (`ensureHooks`). */
  cache: Map<string, tf.Tensor>;
}

/** Block evaluations spent on base runs (for the sweep's cost report). */
export interface Counter {
  blockEvals: number;
}

export function createRun(model: Whisper, name: RunName, mel: Float32Array, prefix: readonly number[], counter: Counter): BaseRun {
  const c = model.config;
  const melT = tf.tensor3d(mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
  const tokens = tf.tensor2d([Array.from(prefix)], [1, prefix.length], 'int32');
  const encoderOut = model.encode(melT);
  const cross = model.crossKV(encoderOut);
  const { logits, present } = model.decode(tokens, cross, undefined, { lastOnly: true });
  tf.dispose(present.flatMap((kv) => [kv.k, kv.v]));
  const lastLogits = tf.reshape(logits, [1, c.vocabSize]) as tf.Tensor2D;
  logits.dispose();
  counter.blockEvals += c.encoderLayers + c.decoderLayers;
  return { name, mel: melT, tokens, encoderOut, cross, lastLogits, cache: new Map() };
}

/**
 * Makes sure `names` are in the run's cache, re-running the model once (with only
 * those hooks captured) if any is missing.
 */
export function ensureHooks(model: Whisper, run: BaseRun, names: Iterable<string>, counter: Counter): void {
  const missing = [...new Set(names)].filter((n) => !run.cache.has(n));
  if (missing.length === 0) return;
  const hooks = new HookSession({ capture: missing });
  const encoderOut = model.encode(run.mel, hooks);
  const cross = model.crossKV(encoderOut, hooks);
  const { logits, present } = model.decode(run.tokens, cross, hooks, { lastOnly: !missing.includes('hook_logits') });
  tf.dispose([encoderOut, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  counter.blockEvals += model.config.encoderLayers + model.config.decoderLayers;
  // The session owns what it captured; move the tensors over rather than copy them.
  for (const [n, t] of hooks.cache) run.cache.set(n, t);
  hooks.cache.clear();
}

export function disposeRun(run: BaseRun): void {
  tf.dispose([run.mel, run.tokens, run.encoderOut, run.lastLogits, ...run.cross.flatMap((kv) => [kv.k, kv.v]), ...run.cache.values()]);
  run.cache.clear();
}
