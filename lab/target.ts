/**
 * Default target and foil: transcribe both clips, find the first token where the
 * transcripts differ; target = the clean token there, foil = the corrupted one,
 * prefix = prompt + the tokens they share (DESIGN.md §4). Every part can be overridden.
 */
import * as tf from '@tensorflow/tfjs-core';
import { greedyDecode } from '../models/decode.ts';
import { EarshotError } from '../models/errors.ts';
import { HookSession } from '../models/hook-session.ts';
import type { Whisper } from '../models/whisper.ts';

export interface TargetChoice {
  prefix: number[];
  target: number;
  foil: number;
  /** Index in the transcripts (after the prompt) of the first differing token. */
  index: number;
  cleanTokens: number[];
  corruptTokens: number[];
}

/** First differing token of two transcripts; a transcript that ends early contributes <|endoftext|>. */
export function chooseTarget(prompt: readonly number[], cleanTokens: readonly number[], corruptTokens: readonly number[], eot: number): TargetChoice {
  const n = Math.max(cleanTokens.length, corruptTokens.length);
  for (let i = 0; i < n; i++) {
    const a = cleanTokens[i] ?? eot;
    const b = corruptTokens[i] ?? eot;
    if (a !== b) {
      return { prefix: [...prompt, ...cleanTokens.slice(0, i)], target: a, foil: b, index: i, cleanTokens: [...cleanTokens], corruptTokens: [...corruptTokens] };
    }
  }
  throw new EarshotError(
    'Both clips are transcribed identically, so there is no first differing token; choose the target and foil tokens yourself (or record a clearer minimal pair).',
    'same-transcript',
  );
}

/** Greedy transcripts of both clips (log-mel [n_mels × frames] each). */
export async function transcribePair(model: Whisper, cleanMel: Float32Array, corruptMel: Float32Array, prompt: readonly number[], maxNewTokens = 32): Promise<{ clean: number[]; corrupt: number[] }> {
  const c = model.config;
  const shape: [number, number, number] = [1, c.numMelBins, 2 * c.maxSourcePositions];
  const out = { clean: [] as number[], corrupt: [] as number[] };
  for (const [which, mel] of [['clean', cleanMel], ['corrupt', corruptMel]] as const) {
    const t = tf.tensor3d(mel, shape);
    try {
      out[which] = await greedyDecode(model, t, { prompt, maxNewTokens });
    } finally {
      t.dispose();
    }
  }
  return out;
}

/**
 * The clean and corrupted runs' top tokens after a given prefix: the default target
 * and foil when the user fixes the prefix but not the tokens.
 */
export async function nextTokens(model: Whisper, cleanMel: Float32Array, corruptMel: Float32Array, prefix: readonly number[]): Promise<{ clean: number; corrupt: number }> {
  const c = model.config;
  const shape: [number, number, number] = [1, c.numMelBins, 2 * c.maxSourcePositions];
  const top = async (mel: Float32Array) => {
    const id = tf.tidy(() => {
      const enc = model.encode(tf.tensor3d(mel, shape));
      const tokens = tf.tensor2d([Array.from(prefix)], [1, prefix.length], 'int32');
      const logits = model.decodeFrom(0, model.decoderEmbed(tokens, 0, new HookSession()), model.crossKV(enc), new HookSession(), true);
      return tf.argMax(tf.reshape(logits, [-1]));
    });
    const v = (await id.data())[0];
    id.dispose();
    return v;
  };
  return { clean: await top(cleanMel), corrupt: await top(corruptMel) };
}
