/**
 * Greedy transcription with a KV cache: the encoder runs once, cross-attention
 * keys/values are computed once, and each step feeds only the newest token.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EarshotError } from './errors.ts';
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
  let past: KV[] | undefined;
  let feed: number[] = [...opts.prompt];
  try {
    for (let step = 0; step < maxNew; step++) {
      if (opts.signal?.aborted) throw new EarshotError('Transcription was cancelled.', 'cancelled');
      const tokens = tf.tensor2d([feed], [1, feed.length], 'int32');
      const { logits, present } = model.decode(tokens, cross, undefined, { past, lastOnly: true });
      tokens.dispose();
      disposeKV(past);
      past = present;
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
