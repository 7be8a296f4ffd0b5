/**
 * Audio-level corruptions beside the minimal pair: white noise with the same
 * length and RMS as the clean clip (the "Beyond Transcription" reference), so a
 * user can compare "a different sound" with "no speech at all".
 */
import { gaussian } from './patch.ts';

export function rms(samples: Float32Array): number {
  let s = 0;
  for (const x of samples) s += x * x;
  return samples.length === 0 ? 0 : Math.sqrt(s / samples.length);
}

/** Gaussian white noise, same length and RMS as `clean`, seeded for reproducibility. */
export function whiteNoiseLike(clean: Float32Array, seed = 0): Float32Array {
  const noise = gaussian(clean.length, seed);
  const scale = rms(clean) / (rms(noise) || 1);
  for (let i = 0; i < noise.length; i++) noise[i] *= scale;
  return noise;
}
