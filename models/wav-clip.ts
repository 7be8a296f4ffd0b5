/** WAV bytes → log-mel for a model's window (CLI and tests; the browser decodes audio itself). */
import { loadAudio16k } from './audio.ts';
import { samplesToMel, type ClipOptions, type PreparedClip } from './clip.ts';
import type { WhisperConfig } from './config.ts';

export function clipToMel(bytes: Uint8Array, c: WhisperConfig, opts: ClipOptions = {}): PreparedClip {
  return samplesToMel(loadAudio16k(bytes), c, opts);
}
