/**
 * Microphone recording: getUserMedia → an AudioWorklet that hands over raw samples and
 * a level for the meter; on stop, the samples are resampled to 16 kHz mono by an
 * OfflineAudioContext (the browser's own resampler, as for files).
 */
import { EarshotError } from '../models/errors.ts';
import { CLIP_RATE } from './clip.ts';

// A file of its own, emitted as is (never inlined as a data: URL): the Content-Security-Policy
// allows scripts from this site only, no Blob or data: URLs.
import tapWorkletUrl from './tap-worklet.js?url&no-inline';

export interface Recording {
  /** Stops and returns 16 kHz mono samples. */
  stop(): Promise<Float32Array>;
  /** Stops and throws the audio away. */
  cancel(): void;
}

/** Longest recording kept (the rest is dropped), seconds. */
export const MAX_RECORD_SECONDS = 30;

export async function startRecording(onLevel: (rms: number, seconds: number) => void): Promise<Recording> {
  if (!navigator.mediaDevices?.getUserMedia) throw new EarshotError('This browser cannot record from a microphone here (it needs https or localhost).', 'no-mic');
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 } });
  } catch (e) {
    const name = e instanceof DOMException ? e.name : '';
    throw new EarshotError(
      name === 'NotAllowedError' ? 'Microphone access was refused; allow it in the address bar, or choose an audio file instead.' : `No microphone could be opened (${name || String(e)}); plug one in, or choose an audio file.`,
      'no-mic',
    );
  }
  const context = new AudioContext();
  try {
    await context.audioWorklet.addModule(tapWorkletUrl);
  } catch (e) {
    stream.getTracks().forEach((t) => t.stop());
    void context.close();
    throw new EarshotError(`The recorder could not start (${e instanceof Error ? e.message : String(e)}); reload the page and try again, or choose an audio file.`, 'no-mic');
  }
  const source = context.createMediaStreamSource(stream);
  const tap = new AudioWorkletNode(context, 'earshot-tap');
  const chunks: Float32Array[] = [];
  let length = 0;
  const maxLength = MAX_RECORD_SECONDS * context.sampleRate;
  tap.port.onmessage = (event: MessageEvent<Float32Array>) => {
    const chunk = event.data;
    if (length < maxLength) {
      chunks.push(chunk);
      length += chunk.length;
    }
    let s = 0;
    for (const x of chunk) s += x * x;
    onLevel(Math.sqrt(s / Math.max(1, chunk.length)), length / context.sampleRate);
  };
  source.connect(tap);
  // The tap must reach the destination to be pulled; it outputs silence.
  tap.connect(context.destination);
  const close = () => {
    stream.getTracks().forEach((t) => t.stop());
    tap.port.onmessage = null;
    source.disconnect();
    tap.disconnect();
    void context.close();
  };
  return {
    async stop() {
      const rate = context.sampleRate;
      close();
      const all = new Float32Array(length);
      let at = 0;
      for (const c of chunks) {
        all.set(c.subarray(0, Math.min(c.length, length - at)), at);
        at += c.length;
        if (at >= length) break;
      }
      if (all.length === 0) throw new EarshotError('The recording is empty; record for longer.', 'empty-audio');
      return resampleTo16k(all, rate);
    },
    cancel: close,
  };
}

async function resampleTo16k(samples: Float32Array, rate: number): Promise<Float32Array> {
  if (rate === CLIP_RATE) return samples;
  const out = Math.max(1, Math.round((samples.length * CLIP_RATE) / rate));
  const offline = new OfflineAudioContext(1, out, CLIP_RATE);
  const buffer = offline.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples as Float32Array<ArrayBuffer>, 0);
  const node = offline.createBufferSource();
  node.buffer = buffer;
  node.connect(offline.destination);
  node.start();
  return (await offline.startRendering()).getChannelData(0).slice();
}
