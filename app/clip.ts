/**
 * A clip in the lab: 16 kHz mono PCM16 and where it came from. PCM16 is the one form a clip
 * has everywhere (engine input, IndexedDB, share URLs), so a shared recording gives the
 * engine bit-for-bit the samples the sharer's engine saw.
 * No DOM here: the share tests import this file in Node.
 */
import { checkSamples } from '../models/clip.ts';

export const CLIP_RATE = 16_000;
/** The window of every released Whisper checkpoint, for clips set before a model is loaded. */
export const WHISPER_WINDOW_SECONDS = 30;

export type ClipOrigin =
  | { kind: 'preset'; id: string; which: 'clean' | 'corrupt' }
  | { kind: 'recording' }
  | { kind: 'file'; name: string }
  | { kind: 'white-noise'; seed: number }
  /** Embedded audio from a share link. */
  | { kind: 'shared' };

export interface LabClip {
  origin: ClipOrigin;
  /** What to call the clip ("bat", "recording 1.4 s", a file name). */
  label: string;
  pcm: Int16Array;
  /** What was repaired when the audio came in (NaN samples, …), shown next to the clip. */
  notes?: string[];
}

/** Float samples in [-1, 1] → PCM16 (clipped, rounded). */
export function toPcm16(samples: Float32Array): Int16Array {
  const out = new Int16Array(samples.length);
  for (let i = 0; i < samples.length; i++) {
    const x = Math.max(-1, Math.min(1, samples[i]));
    out[i] = Math.max(-32768, Math.min(32767, Math.round(x * 32768)));
  }
  return out;
}

/** PCM16 → float samples, x / 32768 (what models/audio.ts gives for a PCM16 WAV). */
export function fromPcm16(pcm: Int16Array): Float32Array {
  const out = new Float32Array(pcm.length);
  for (let i = 0; i < pcm.length; i++) out[i] = pcm[i] / 32768;
  return out;
}

export function secondsOf(clip: LabClip): number {
  return clip.pcm.length / CLIP_RATE;
}

/** A 16 kHz mono PCM16 WAV file of the clip, for playing and downloading. */
export function wavBytes(pcm: Int16Array): Uint8Array {
  const data = pcm.length * 2;
  const out = new Uint8Array(44 + data);
  const v = new DataView(out.buffer);
  const ascii = (at: number, s: string) => [...s].forEach((ch, i) => v.setUint8(at + i, ch.charCodeAt(0)));
  ascii(0, 'RIFF');
  v.setUint32(4, 36 + data, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, 1, true); // PCM
  v.setUint16(22, 1, true); // mono
  v.setUint32(24, CLIP_RATE, true);
  v.setUint32(28, CLIP_RATE * 2, true);
  v.setUint16(32, 2, true);
  v.setUint16(34, 16, true);
  ascii(36, 'data');
  v.setUint32(40, data, true);
  for (let i = 0; i < pcm.length; i++) v.setInt16(44 + 2 * i, pcm[i], true);
  return out;
}

/**
 * Start and end (samples) of the part of a recording above a level: leading and trailing
 * silence cut, `marginMs` kept on each side. Returns the whole clip when it is all quiet.
 */
export function speechBounds(samples: Float32Array, threshold = 0.02, marginMs = 80): [number, number] {
  const frame = CLIP_RATE / 100; // 10 ms
  let first = -1;
  let last = -1;
  for (let at = 0; at < samples.length; at += frame) {
    let peak = 0;
    for (let i = at; i < Math.min(samples.length, at + frame); i++) peak = Math.max(peak, Math.abs(samples[i]));
    if (peak >= threshold) {
      if (first < 0) first = at;
      last = Math.min(samples.length, at + frame);
    }
  }
  if (first < 0) return [0, samples.length];
  const margin = Math.round((marginMs / 1000) * CLIP_RATE);
  return [Math.max(0, first - margin), Math.min(samples.length, last + margin)];
}

/** What to tell a person about a clip, shown next to it (none of it stops a run). */
export interface ClipAdvice {
  /** Silence, clipping, repaired samples. */
  warnings: string[];
  /** Set when the clip is longer than the model's window: the model would hear only its start. */
  tooLong: { seconds: number; window: number } | null;
}

export function clipAdvice(clip: LabClip, windowSeconds: number): ClipAdvice {
  const warnings = [...(clip.notes ?? []), ...checkSamples(fromPcm16(clip.pcm), 'This clip')];
  const seconds = clip.pcm.length / CLIP_RATE;
  return { warnings, tooLong: clip.pcm.length > Math.round(windowSeconds * CLIP_RATE) ? { seconds, window: windowSeconds } : null };
}

/**
 * The part of a clip from `start` to `end` seconds (clamped to the clip), labelled with the
 * range. A built-in or shared clip becomes the person's own recording once cut.
 */
export function trimClip(clip: LabClip, start: number, end: number): LabClip {
  const a = Math.max(0, Math.min(clip.pcm.length, Math.round(start * CLIP_RATE)));
  const b = Math.max(a, Math.min(clip.pcm.length, Math.round(end * CLIP_RATE)));
  const origin = clip.origin.kind === 'file' || clip.origin.kind === 'recording' ? clip.origin : ({ kind: 'recording' } as const);
  const label = `${clip.label.replace(/ \(trimmed.*\)$/, '')} (trimmed ${(a / CLIP_RATE).toFixed(2)}–${(b / CLIP_RATE).toFixed(2)} s)`;
  return { origin, label, pcm: clip.pcm.slice(a, b), ...(clip.notes ? { notes: clip.notes } : {}) };
}
