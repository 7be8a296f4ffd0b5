/**
 * Greedy transcription with a KV cache: the encoder runs once, cross-attention
 * keys/values are computed once, and each step feeds only the newest token.
 *
 * The self-attention cache is preallocated (models/kv-cache.ts) where the backend can write
 * it in place (webgpu, wasm, cpu): a step allocates no KV memory and copies nothing old. On
 * WebGPU a step's kernels go to the device in one submit, flushed by reading the token back.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EarshotError } from './errors.ts';
import { KVCache } from './kv-cache.ts';
import type { KV, Whisper } from './whisper.ts';

export interface GreedyOptions {
  /** Decoder prompt, e.g. [<|startoftranscript|>, <|en|>, <|transcribe|>, <|notimestamps|>]. */
  prompt: readonly number[];
  /** Stop token (<|endoftext|>); defaults to the config's eos. */
  eot?: number;
  /** New tokens at most (the decoder's context also bounds it). */
  maxNewTokens?: number;
  /** Token ids never chosen (e.g. timestamps in plain-text mode). Raw argmax when empty. */
  suppress?: readonly number[];
  /** Stops between steps (an EarshotError with code 'cancelled'). */
  signal?: AbortSignal;
  /** Called with each new token and the step count, e.g. for progress. */
  onToken?: (token: number, step: number, maxSteps: number) => void;
}

/**
 * Greedy decoding of one clip from its log-mel [1, n_mels, frames]. Returns the new
 * tokens only (the prompt is not repeated), without the final <|endoftext|>.
 */
export async function greedyDecode(model: Whisper, mel: tf.Tensor3D, opts: GreedyOptions): Promise<number[]> {
  const c = model.config;
  const eot = opts.eot ?? c.eosTokenId;
  const maxNew = Math.min(opts.maxNewTokens ?? 224, c.maxTargetPositions - opts.prompt.length);
  const suppressMask = opts.suppress?.length ? makeSuppressMask(c.vocabSize, opts.suppress) : null;
  const encoderOut = model.encode(mel);
  const cross = model.crossKV(encoderOut);
  encoderOut.dispose();
  const out: number[] = [];
  const cache = KVCache.supported() ? new KVCache(c, 1, Math.min(c.maxTargetPositions, opts.prompt.length + maxNew)) : null;
  let past: KV[] | undefined;
  let feed: number[] = [...opts.prompt];
  const flags = tf.env();
  const submitBatch = flags.getFlags().WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE;
  // One submit per step: tfjs-webgpu otherwise submits every 15 kernels.
  if (submitBatch !== undefined) flags.set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', 1_000_000);
  try {
    for (let step = 0; step < maxNew; step++) {
      if (opts.signal?.aborted) throw new EarshotError('Transcription was cancelled.', 'cancelled');
      const tokens = tf.tensor2d([feed], [1, feed.length], 'int32');
      const { logits, present } = model.decode(tokens, cross, undefined, cache ? { cache, lastOnly: true } : { past, lastOnly: true });
      tokens.dispose();
      if (!cache) {
        disposeKV(past);
        past = present;
      }
      const next = tf.tidy(() => {
        const row = tf.reshape(logits, [c.vocabSize]);
        return tf.argMax(suppressMask ? tf.add(row, suppressMask) : row);
      });
      logits.dispose();
      const id = (await next.data())[0];
      next.dispose();
      if (id === eot) break;
      out.push(id);
      opts.onToken?.(id, step + 1, maxNew);
      feed = [id];
    }
  } finally {
    if (submitBatch !== undefined) flags.set('WEBGPU_DEFERRED_SUBMIT_BATCH_SIZE', submitBatch);
    cache?.dispose();
    disposeKV(past);
    disposeKV(cross);
    suppressMask?.dispose();
  }
  return out;
}

function makeSuppressMask(vocab: number, ids: readonly number[]): tf.Tensor1D {
  const m = new Float32Array(vocab);
  for (const id of ids) if (id >= 0 && id < vocab) m[id] = -Infinity;
  return tf.tensor1d(m);
}

export function disposeKV(kvs: KV[] | undefined): void {
  if (!kvs) return;
  for (const { k, v } of kvs) {
    k.dispose();
    v.dispose();
  }
}
