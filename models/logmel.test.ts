import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { EarshotError } from './errors.ts';
import { N_FFT, N_FREQS, logMel, melFilterBank, powerSpectrum } from './logmel.ts';

// Shared reference data lives beside the repo (../shared/reference); it is read, never copied.
const REF = fileURLToPath(new URL('../../shared/reference/', import.meta.url));
const haveRef = existsSync(`${REF}jfk_16k.f32`);
if (!haveRef) console.warn('log-mel reference tests skipped: ../shared/reference (Whisper fixtures) is absent');

function readF32(path: string): Float32Array {
  const bytes = readFileSync(path);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

/** Minimal .npy reader: little-endian f4/f8, C order — all mel_filters.npz needs. */
function parseNpy(bytes: Uint8Array): { shape: number[]; data: Float64Array } {
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== 'NUMPY') throw new Error('not a .npy file');
  const major = bytes[6];
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const headerStart = major === 1 ? 10 : 12;
  const header = new TextDecoder().decode(bytes.subarray(headerStart, headerStart + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const fortran = /'fortran_order':\s*(True|False)/.exec(header)?.[1];
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? '').split(',').filter((s) => s.trim()).map(Number);
  if (fortran !== 'False') throw new Error('fortran-order .npy not supported');
  const body = bytes.slice(headerStart + headerLength);
  if (descr === '<f4') return { shape, data: Float64Array.from(new Float32Array(body.buffer)) };
  if (descr === '<f8') return { shape, data: new Float64Array(body.buffer) };
  throw new Error(`unsupported npy dtype ${descr}`);
}

function range(values: Float32Array): [number, number] {
  let min = Infinity;
  let max = -Infinity;
  for (const value of values) {
    min = Math.min(min, value);
    max = Math.max(max, value);
  }
  return [min, max];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i] - b[i]));
  return max;
}

describe('FFT power spectrum', () => {
  it('matches a direct float64 DFT', () => {
    const frame = Float64Array.from({ length: N_FFT }, (_, n) => Math.sin(n * 0.37) + 0.25 * Math.cos(n * n * 0.011) - 0.1);
    const power = powerSpectrum(frame);
    let worst = 0;
    for (let k = 0; k < N_FREQS; k++) {
      let re = 0;
      let im = 0;
      for (let n = 0; n < N_FFT; n++) {
        re += frame[n] * Math.cos((2 * Math.PI * k * n) / N_FFT);
        im -= frame[n] * Math.sin((2 * Math.PI * k * n) / N_FFT);
      }
      worst = Math.max(worst, Math.abs(power[k] - (re * re + im * im)) / Math.max(1, re * re + im * im));
    }
    expect(worst).toBeLessThan(1e-10);
  });
});

describe('melFilterBank', () => {
  it('has the expected shape and unit-area slaney triangles', () => {
    const bank = melFilterBank(80);
    expect(bank.length).toBe(80 * 201);
    for (const value of bank) expect(value).toBeGreaterThanOrEqual(0);
    // Slaney norm: Σ_k w[m,k]·Δf ≈ 1 for bands wide enough to be sampled by several bins.
    const rowSum = (m: number) => bank.subarray(m * 201, (m + 1) * 201).reduce((a, b) => a + b, 0) * 40;
    expect(rowSum(60)).toBeCloseTo(1, 1);
  });

  it.skipIf(!haveRef)('matches mel_filters.npz mel_80 and mel_128', () => {
    const archive = unzipSync(new Uint8Array(readFileSync(`${REF}whisper-assets/mel_filters.npz`)));
    for (const nMels of [80, 128]) {
      const { shape, data } = parseNpy(archive[`mel_${nMels}.npy`]);
      expect(shape).toEqual([nMels, 201]);
      const diff = maxAbsDiff(melFilterBank(nMels), data);
      console.info(`mel_${nMels} filter bank max |diff| vs mel_filters.npz: ${diff.toExponential(2)}`);
      // The .npz is float32; ours is float64, so the bound is float32 rounding of values ≤ 0.03.
      expect(diff).toBeLessThan(1e-8);
    }
  });
});

describe('logMel', () => {
  it.skipIf(!haveRef)('reproduces jfk_logmel.f32 and the LibriSpeech log-mel (≤ 1e-4)', () => {
    for (const [name, input, expected] of [
      ['jfk', 'jfk_16k.f32', 'jfk_logmel.f32'],
      ['librispeech', 'librispeech/1272-128104-0000_16k.f32', 'librispeech/1272-128104-0000_logmel.f32'],
    ] as const) {
      const started = performance.now();
      const mel = logMel(readF32(`${REF}${input}`), { nMels: 80, nFrames: 3000 });
      const elapsed = performance.now() - started;
      const diff = maxAbsDiff(mel, readF32(`${REF}${expected}`));
      console.info(`log-mel ${name}: max |diff| ${diff.toExponential(2)}, ${elapsed.toFixed(0)} ms for 3000 frames`);
      expect(diff).toBeLessThanOrEqual(1e-4);
    }
  });

  it.skipIf(!haveRef)('matches the published HF values (EXPECTED.md §A) and §E probes', () => {
    const libri = logMel(readF32(`${REF}librispeech/1272-128104-0000_16k.f32`), { nMels: 80, nFrames: 3000 });
    const published = [
      0.1193, -0.0946, -0.1098, -0.0196, 0.0225, -0.0690, -0.1736, 0.0951,
      0.0971, -0.0817, -0.0702, 0.0162, 0.0260, 0.0017, -0.0192, -0.1678,
      0.0709, -0.1867, -0.0655, -0.0274, -0.0234, -0.1884, -0.0516, -0.0554,
      -0.0274, -0.1425, -0.1423, 0.0837, 0.0377, -0.0854,
    ];
    expect(maxAbsDiff(libri.subarray(0, 30), published)).toBeLessThanOrEqual(1e-4);
    expect(libri[40 * 3000 + 100]).toBeCloseTo(-0.163216, 5);
    const [min, max] = range(libri);
    expect(min).toBeCloseTo(-0.806027, 5);
    expect(max).toBeCloseTo(1.193973, 5);

    const jfk = logMel(readF32(`${REF}jfk_16k.f32`), { nMels: 80, nFrames: 3000 });
    expect([...jfk.subarray(40 * 3000 + 100, 40 * 3000 + 103)].map((v) => +v.toFixed(6)))
      .toEqual([0.145013, 0.239048, 0.406208]);
    expect(jfk[0]).toBeCloseTo(-0.538742, 5);
    expect(jfk.reduce((a, b) => a + b, 0) / jfk.length).toBeCloseTo(-0.295029, 5);
  });

  it('maps silence to a constant spectrogram without NaN', () => {
    for (const nMels of [80, 128]) {
      const mel = logMel(new Float32Array(16000), { nMels, nFrames: 3000 });
      expect(mel.length).toBe(nMels * 3000);
      // All bins sit at the 1e-10 clamp: (log10(1e-10) + 4) / 4.
      for (const value of mel) expect(value).toBe(-1.5);
    }
  });

  it('keeps max − min ≤ 2 and handles short windows, trimming and 128 mels', () => {
    const tone = Float32Array.from({ length: 40000 }, (_, n) => 0.3 * Math.sin((2 * Math.PI * 440 * n) / 16000) * Math.exp(-n / 9000));
    for (const opts of [{ nMels: 80, nFrames: 3000 }, { nMels: 128, nFrames: 100 }, { nMels: 80, nFrames: 2 }]) {
      const mel = logMel(tone, opts);
      expect(mel.length).toBe(opts.nMels * opts.nFrames);
      let min = Infinity;
      let max = -Infinity;
      for (const value of mel) {
        expect(Number.isFinite(value)).toBe(true);
        min = Math.min(min, value);
        max = Math.max(max, value);
      }
      expect(max - min).toBeLessThanOrEqual(2);
    }
    // Trimming: a window shorter than the clip sees only its start (frames far from the cut agree).
    const long = logMel(tone, { nMels: 80, nFrames: 250 });
    const short = logMel(tone.subarray(0, 250 * 160), { nMels: 80, nFrames: 250 });
    expect(maxAbsDiff(long, short)).toBe(0);
  });

  it('puts a 440 Hz tone in the right mel band', () => {
    const tone = Float32Array.from({ length: 16000 }, (_, n) => 0.5 * Math.sin((2 * Math.PI * 440 * n) / 16000));
    const mel = logMel(tone, { nMels: 80, nFrames: 100 });
    // Below 1 kHz the 80 bands are 37.2 Hz apart; band m peaks at (m + 1)·37.2 Hz, so 440 Hz → band 11.
    let best = 0;
    for (let m = 0; m < 80; m++) if (mel[m * 100 + 50] > mel[best * 100 + 50]) best = m;
    expect(best).toBe(11);
  });

  it('rejects bad options and non-finite audio with EarshotError', () => {
    const audio = new Float32Array(1000);
    expect(() => logMel(audio, { nMels: 0, nFrames: 3000 })).toThrowError(EarshotError);
    expect(() => logMel(audio, { nMels: 80, nFrames: 1 })).toThrowError(EarshotError);
    expect(() => logMel(audio, { nMels: 80.5, nFrames: 3000 })).toThrowError(EarshotError);
    audio[10] = NaN;
    expect(() => logMel(audio, { nMels: 80, nFrames: 3000 })).toThrowError(/sample 10 is NaN/);
    audio[10] = Infinity;
    expect(() => logMel(audio, { nMels: 80, nFrames: 3000 })).toThrowError(EarshotError);
  });
});
