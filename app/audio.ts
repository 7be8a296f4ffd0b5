/**
 * Audio files → what the engine takes: mono float32 samples at 16 kHz. WAV files are read by
 * models/audio.ts, exactly as the CLI reads them; the browser decodes everything else (MP3,
 * OGG, FLAC, …, and WAV variants models/audio.ts does not know) and resamples it, via an
 * OfflineAudioContext running at 16 kHz.
 */
import { decodeWav, resample, toMono } from '../models/audio.ts';
import { EarshotError, isEarshotError } from '../models/errors.ts';
import { MAX_AUDIO_BYTES, checkFileSize } from '../models/limits.ts';
import { ENGINE_SAMPLE_RATE } from '../workers/protocol.ts';

export interface Clip {
  /** File name or preset name, for display and messages. */
  label: string;
  /** Mono samples at 16 kHz. */
  samples: Float32Array;
  seconds: number;
  /** The file's channel layout and what was done to it, e.g. "stereo, mixed to mono". */
  original: string;
  /** Object URL of the original bytes, for an <audio> player; revoke with releaseClip. */
  playUrl: string;
  /** What was repaired on the way in (NaN or infinite samples), for the person to see. */
  notes: string[];
}

/** An audio file the person chose: refused by its size before it is read, then decoded. */
export async function readAudioFile(file: File): Promise<Clip> {
  checkFileSize(file.name, file.size, MAX_AUDIO_BYTES, `cut out the part you want first (the model hears 30 s at a time)`);
  return decodeClip(await file.arrayBuffer(), file.name, file.type);
}

export async function decodeClip(bytes: ArrayBuffer, label: string, mimeType = ''): Promise<Clip> {
  if (bytes.byteLength === 0) throw new EarshotError(`${label} is empty; choose an audio file with sound in it.`, 'empty-audio');
  const wav = readWav(new Uint8Array(bytes), label);
  const playUrl = URL.createObjectURL(new Blob([bytes], mimeType ? { type: mimeType } : {}));
  try {
    const { samples, original } = wav ?? (await browserDecode(bytes, label));
    if (samples.length === 0) throw new EarshotError(`${label} has no audio samples.`, 'empty-audio');
    return { label, samples, seconds: samples.length / ENGINE_SAMPLE_RATE, original, playUrl, notes: repairNonFinite(samples, label) };
  } catch (e) {
    URL.revokeObjectURL(playUrl);
    throw e;
  }
}

export function releaseClip(clip: Clip | null): void {
  if (clip) URL.revokeObjectURL(clip.playUrl);
}

/**
 * A WAV file through models/audio.ts: int16 / 32768 exactly, like openai's loader and the CLI
 * (Chromium's decoder divides positive int16 samples by 32767, so a loud sample would come
 * back one step off in PCM16), and the CLI's resampler. A file that stops before the audio
 * it announces is refused (the browser would quietly play what is left); anything else it
 * cannot read (null) goes to the browser's decoder.
 */
function readWav(bytes: Uint8Array, label: string): { samples: Float32Array; original: string } | null {
  const tag = String.fromCharCode(...bytes.subarray(0, 4));
  if (tag !== 'RIFF' && tag !== 'RIFX') return null;
  try {
    const { channels, sampleRate } = decodeWav(bytes);
    const n = channels.length;
    const samples = resample(toMono(channels), sampleRate, ENGINE_SAMPLE_RATE);
    return { samples, original: n === 1 ? 'mono' : `${n === 2 ? 'stereo' : `${n} channels`}, mixed to mono` };
  } catch (e) {
    if (isEarshotError(e, 'audio/truncated')) throw new EarshotError(e.message.replace(/^the WAV file/, label), 'audio/truncated');
    return null;
  }
}

async function browserDecode(bytes: ArrayBuffer, label: string): Promise<{ samples: Float32Array; original: string }> {
  // decodeAudioData detaches the buffer it is given, so it gets a copy; it also
  // resamples to the context's rate, so only the down-mix to mono is left to do.
  const decoder = new OfflineAudioContext(1, 1, ENGINE_SAMPLE_RATE);
  let decoded: AudioBuffer;
  try {
    decoded = await decoder.decodeAudioData(bytes.slice(0));
  } catch {
    throw new EarshotError(`${label} could not be decoded as audio; use a WAV, MP3, OGG or FLAC file.`, 'bad-audio');
  }
  const samples = decoded.numberOfChannels === 1 ? decoded.getChannelData(0).slice() : await mixToMono(decoded);
  return { samples, original: describeFormat(decoded) };
}

/** Web Audio's standard down-mix (e.g. (L + R) / 2), rendered offline at 16 kHz. */
async function mixToMono(buffer: AudioBuffer): Promise<Float32Array> {
  const context = new OfflineAudioContext(1, buffer.length, ENGINE_SAMPLE_RATE);
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  source.start();
  const rendered = await context.startRendering();
  return rendered.getChannelData(0).slice();
}

function describeFormat(decoded: AudioBuffer): string {
  const n = decoded.numberOfChannels;
  return n === 1 ? 'mono' : `${n === 2 ? 'stereo' : `${n} channels`}, mixed to mono`;
}

/**
 * NaN samples become silence and infinite ones full scale (what PCM16 can hold), and the clip
 * says so: a float WAV with a few bad samples stays usable, and nobody is surprised.
 */
function repairNonFinite(samples: Float32Array, label: string): string[] {
  let nan = 0;
  let inf = 0;
  let first = -1;
  for (let i = 0; i < samples.length; i++) {
    const x = samples[i];
    if (Number.isFinite(x)) continue;
    if (first < 0) first = i;
    if (Number.isNaN(x)) {
      nan++;
      samples[i] = 0;
    } else {
      inf++;
      samples[i] = x > 0 ? 1 : -1;
    }
  }
  if (first < 0) return [];
  const what = [nan && `${nan} NaN`, inf && `${inf} infinite`].filter(Boolean).join(' and ');
  const done = [nan && 'NaN set to 0', inf && 'infinite set to full scale'].filter(Boolean).join(', ');
  return [`${label} had ${what} sample${nan + inf === 1 ? '' : 's'} (first at ${(first / ENGINE_SAMPLE_RATE).toFixed(3)} s); ${done}. Re-export the audio if that matters.`];
}
