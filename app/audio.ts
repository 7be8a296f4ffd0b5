/**
 * Audio files → what the engine takes: mono float32 samples at 16 kHz. The browser does
 * the decoding (any format it knows: WAV, MP3, OGG, FLAC, …) and the resampling, via an
 * OfflineAudioContext running at 16 kHz.
 */
import { EarshotError } from '../models/errors.ts';
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
}

export async function decodeClip(bytes: ArrayBuffer, label: string, mimeType = ''): Promise<Clip> {
  if (bytes.byteLength === 0) throw new EarshotError(`${label} is empty; choose an audio file with sound in it.`, 'empty-audio');
  const playUrl = URL.createObjectURL(new Blob([bytes], mimeType ? { type: mimeType } : {}));
  try {
    // decodeAudioData detaches the buffer it is given, so it gets a copy; it also
    // resamples to the context's rate, so only the down-mix to mono is left to do.
    const decoder = new OfflineAudioContext(1, 1, ENGINE_SAMPLE_RATE);
    let decoded: AudioBuffer;
    try {
      decoded = await decoder.decodeAudioData(bytes.slice(0));
    } catch {
      throw new EarshotError(`${label} could not be decoded as audio; use a WAV, MP3, OGG or FLAC file.`, 'bad-audio');
    }
    const original = describeFormat(decoded);
    const samples = decoded.numberOfChannels === 1 ? decoded.getChannelData(0).slice() : await mixToMono(decoded);
    if (samples.length === 0) throw new EarshotError(`${label} has no audio samples.`, 'empty-audio');
    return { label, samples, seconds: samples.length / ENGINE_SAMPLE_RATE, original, playUrl };
  } catch (e) {
    URL.revokeObjectURL(playUrl);
    throw e;
  }
}

export function releaseClip(clip: Clip | null): void {
  if (clip) URL.revokeObjectURL(clip.playUrl);
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
