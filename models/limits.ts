/**
 * How large a file Earshot reads, checked by its size before a byte of it is read (the page
 * checks File.size, the CLI stat()), so an enormous file is refused at once instead of
 * filling the tab's or the process's memory.
 */
import { EarshotError } from './errors.ts';

/**
 * Audio files: the model hears 30 s at a time, and 256 MB is over 20 minutes of 48 kHz
 * stereo 16-bit audio.
 */
export const MAX_AUDIO_BYTES = 256 * 1024 ** 2;
/** model.safetensors in the page: more than any Whisper checkpoint a browser tab can hold (large-v3 is ~3 GB in f16). */
export const MAX_WEIGHTS_BYTES = 4 * 1024 ** 3;
/** config.json, tokenizer.json (whisper's tokenizer.json is ~2.5 MB). */
export const MAX_JSON_BYTES = 64 * 1024 ** 2;

/** "300 MB", "5.0 GB". */
export function formatBytes(bytes: number): string {
  return bytes >= 1024 ** 3 ? `${(bytes / 1024 ** 3).toFixed(1)} GB` : `${Math.round(bytes / 1024 ** 2)} MB`;
}

/** Throws the 'too-large' EarshotError when `size` passes `limit`; `advice` says what to do instead. */
export function checkFileSize(name: string, size: number, limit: number, advice: string): void {
  if (size > limit) {
    throw new EarshotError(`${name} is ${formatBytes(size)}, more than the ${formatBytes(limit)} Earshot reads; ${advice}.`, 'too-large');
  }
}
