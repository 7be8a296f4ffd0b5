/**
 * From 16 kHz samples to the model's input: check the clip, fit it to the model's
 * window, compute the log-mel. (WAV bytes: wav-clip.ts; the browser decodes its own.)
 */
import type { WhisperConfig } from './config.ts';
import { EarshotError } from './errors.ts';
import { logMel } from './logmel.ts';

export const SAMPLE_RATE = 16000;
export const HOP_LENGTH = 160;

export interface ClipOptions {
  /** Keep only the first window's worth of a clip that is too long, instead of refusing it. */
  trim?: boolean;
  /** How to name the clip in messages (a file name, "clean clip", …). */
  label?: string;
}

export interface PreparedClip {
  /** 16 kHz mono samples (after trimming). */
  samples: Float32Array;
  /** Log-mel [n_mels][window frames], mel-major. */
  mel: Float32Array;
  /** Duration of the (trimmed) clip in seconds. */
  seconds: number;
  trimmed: boolean;
  /** Things a person should know that do not stop the run (silence, clipping). */
  warnings: string[];
}

/** Peak below −80 dBFS: nothing a microphone picked up. */
const SILENT_PEAK = 1e-4;

export function windowSeconds(c: WhisperConfig): number {
  return (2 * c.maxSourcePositions * HOP_LENGTH) / SAMPLE_RATE;
}

/**
 * Refuses NaN and infinite samples (with the time of the first); returns what a person should
 * know about the level that does not stop a run: silence, clipping.
 */
export function checkSamples(samples: Float32Array, label: string): string[] {
  let peak = 0;
  let clipped = 0;
  for (let i = 0; i < samples.length; i++) {
    const a = Math.abs(samples[i]);
    if (!(a <= Infinity)) throw new EarshotError(`${label} has a NaN sample at ${(i / SAMPLE_RATE).toFixed(3)} s; re-export the audio.`, 'bad-samples');
    if (a === Infinity) throw new EarshotError(`${label} has an infinite sample at ${(i / SAMPLE_RATE).toFixed(3)} s; re-export the audio.`, 'bad-samples');
    if (a > peak) peak = a;
    if (a >= 0.999) clipped++;
  }
  const warnings: string[] = [];
  if (peak < SILENT_PEAK) warnings.push(`${label} is silent (peak ${peak === 0 ? '−∞' : (20 * Math.log10(peak)).toFixed(0)} dBFS): the model will hear nothing in it.`);
  else if (clipped > samples.length / 1000) warnings.push(`${label} is clipped (${clipped} samples at full scale): record it a little quieter.`);
  return warnings;
}

/** Samples at 16 kHz → log-mel for this model's window. */
export function samplesToMel(samples: Float32Array, c: WhisperConfig, opts: ClipOptions = {}): PreparedClip {
  const label = opts.label ?? 'the clip';
  const windowSamples = 2 * c.maxSourcePositions * HOP_LENGTH;
  if (samples.length === 0) throw new EarshotError(`${label} has no audio samples.`, 'empty-audio');
  const warnings = checkSamples(samples, label);
  let trimmed = false;
  if (samples.length > windowSamples) {
    if (!opts.trim) {
      throw new EarshotError(
        `${label} is ${(samples.length / SAMPLE_RATE).toFixed(2)} s long but the model hears ${windowSeconds(c)} s at a time; trim it (--trim keeps the first ${windowSeconds(c)} s).`,
        'too-long',
      );
    }
    samples = samples.subarray(0, windowSamples);
    trimmed = true;
    warnings.push(`${label} was trimmed to its first ${windowSeconds(c)} s.`);
  }
  const mel = logMel(samples, { nMels: c.numMelBins, nFrames: 2 * c.maxSourcePositions });
  return { samples, mel, seconds: samples.length / SAMPLE_RATE, trimmed, warnings };
}
