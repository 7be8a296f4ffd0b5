/**
 * A default foil when both clips are transcribed alike (no first differing token): the
 * corrupted run's most likely token other than the target, at the last prefix position.
 * It answers "what would the model say instead, hearing the corrupted clip?", so the
 * logit difference still compares the clean answer with the corrupted run's best rival.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EarshotError } from '../models/errors.ts';
import { HookSession } from '../models/hook-session.ts';
import type { Whisper } from '../models/whisper.ts';

export async function rivalToken(model: Whisper, mel: Float32Array, prefix: readonly number[], target: number): Promise<number> {
  const c = model.config;
  if (prefix.length === 0) throw new EarshotError('The decoder prefix is empty; it needs at least <|startoftranscript|>.', 'bad-prefix');
  const id = tf.tidy(() => {
    const encoderOut = model.encode(tf.tensor3d(mel, [1, c.numMelBins, 2 * c.maxSourcePositions]));
    const tokens = tf.tensor2d([Array.from(prefix)], [1, prefix.length], 'int32');
    const logits = tf.reshape(model.decodeFrom(0, model.decoderEmbed(tokens, 0, new HookSession()), model.crossKV(encoderOut), new HookSession(), true), [-1]); // [vocab]
    // A large finite penalty, not −∞: every backend adds and compares it the same way.
    const mask = new Float32Array(c.vocabSize);
    if (target >= 0 && target < c.vocabSize) mask[target] = -1e30;
    return tf.argMax(tf.add(logits, tf.tensor1d(mask)));
  });
  const rival = (await id.data())[0];
  id.dispose();
  return rival;
}
