/**
 * Whisper's log-mel front end: openai `log_mel_spectrogram` (NOTES.md §2), for any window length.
 *
 *   pad/trim to nFrames·160 samples → reflect-pad 200 → periodic Hann(400), hop 160 → |rfft|²
 *   → drop the last frame → slaney mel filters (0–8 kHz) → log10(max(·, 1e-10))
 *   → floor at global max − 8 → (x + 4) / 4
 *
 * Everything up to the final cast runs in float64 so the output matches the numpy reference to
 * float32 rounding. The 400-point DFT is a mixed-radix (4·4·5·5) Stockham FFT.
 */
import { EarshotError } from './errors.ts';

export const SAMPLE_RATE = 16000;
export const N_FFT = 400;
export const HOP_LENGTH = 160;
/** One-sided spectrum bins for N_FFT. */
export const N_FREQS = N_FFT / 2 + 1;

export interface LogMelOptions {
  /** Mel bins: 80, or 128 for large-v3. */
  nMels: number;
  /** Window length in mel frames (3000 for a 30 s window: 2 × max_source_positions). */
  nFrames: number;
}

// ---------------------------------------------------------------------------------------------
// Slaney mel scale (librosa `hz_to_mel`/`mel_to_hz` with htk=False): linear below 1 kHz,
// logarithmic above.

const F_SP = 200 / 3;
const MIN_LOG_HZ = 1000;
const MIN_LOG_MEL = MIN_LOG_HZ / F_SP;
const LOG_STEP = Math.log(6.4) / 27;

function hzToMel(hz: number): number {
  return hz >= MIN_LOG_HZ ? MIN_LOG_MEL + Math.log(hz / MIN_LOG_HZ) / LOG_STEP : hz / F_SP;
}

function melToHz(mel: number): number {
  return mel >= MIN_LOG_MEL ? MIN_LOG_HZ * Math.exp(LOG_STEP * (mel - MIN_LOG_MEL)) : F_SP * mel;
}

/**
 * Slaney-normalised triangular mel filters from 0 Hz to sampleRate/2, as librosa
 * `filters.mel(sr, n_fft, n_mels)` builds them (the source of openai's mel_filters.npz).
 * Returns [nMels][nFft/2 + 1], row-major, float64.
 */
export function melFilterBank(nMels: number, nFft = N_FFT, sampleRate = SAMPLE_RATE): Float64Array {
  requirePositiveInteger(nMels, 'nMels');
  requirePositiveInteger(nFft, 'nFft');
  requirePositiveInteger(sampleRate, 'sampleRate');
  const nFreqs = Math.floor(nFft / 2) + 1;
  const fftFreqs = new Float64Array(nFreqs); // [nFreqs] Hz of each rfft bin
  for (let k = 0; k < nFreqs; k++) fftFreqs[k] = (k * sampleRate) / nFft;

  // nMels + 2 band edges equally spaced in mel (numpy linspace: i·step, last pinned to stop).
  const maxMel = hzToMel(sampleRate / 2);
  const edges = new Float64Array(nMels + 2); // [nMels + 2] Hz
  const step = maxMel / (nMels + 1);
  for (let i = 0; i < nMels + 2; i++) edges[i] = melToHz(i === nMels + 1 ? maxMel : i * step);

  const weights = new Float64Array(nMels * nFreqs); // [nMels][nFreqs]
  for (let m = 0; m < nMels; m++) {
    const lowerWidth = edges[m + 1] - edges[m];
    const upperWidth = edges[m + 2] - edges[m + 1];
    // Slaney norm: each filter has unit area in Hz, so wide high bands are not louder.
    const norm = 2 / (edges[m + 2] - edges[m]);
    for (let k = 0; k < nFreqs; k++) {
      const rising = (fftFreqs[k] - edges[m]) / lowerWidth;
      const falling = (edges[m + 2] - fftFreqs[k]) / upperWidth;
      weights[m * nFreqs + k] = Math.max(0, Math.min(rising, falling)) * norm;
    }
  }
  return weights;
}

/** Per-filter nonzero bin range, so the projection skips the zeros (~2% of the matrix is used). */
interface SparseFilters {
  nMels: number;
  first: Int32Array; // [nMels] first nonzero bin
  last: Int32Array; // [nMels] one past the last nonzero bin
  weights: Float64Array; // [nMels][N_FREQS]
}

const filterCache = new Map<number, SparseFilters>();

function sparseFilters(nMels: number): SparseFilters {
  const cached = filterCache.get(nMels);
  if (cached) return cached;
  const weights = melFilterBank(nMels);
  const first = new Int32Array(nMels);
  const last = new Int32Array(nMels);
  for (let m = 0; m < nMels; m++) {
    let lo = 0;
    let hi = N_FREQS;
    while (lo < hi && weights[m * N_FREQS + lo] === 0) lo++;
    while (hi > lo && weights[m * N_FREQS + hi - 1] === 0) hi--;
    first[m] = lo;
    last[m] = hi;
  }
  const filters = { nMels, first, last, weights };
  filterCache.set(nMels, filters);
  return filters;
}

// ---------------------------------------------------------------------------------------------
// 400-point complex FFT: Stockham autosort, decimation in frequency, radices 4·4·5·5.
// Stage with radix r on sub-length n and stride s:
//   y[q + s(r·p + t)] = w_n^{p·t} · Σ_k x[q + s(p + k·n/r)] · ω_r^{t·k}

interface FftStage {
  radix: number;
  subLength: number; // n/r
  stride: number; // s
  twiddleRe: Float64Array; // [n/r][radix] w_n^{p·t}
  twiddleIm: Float64Array;
  rootRe: Float64Array; // [radix] ω_r^j
  rootIm: Float64Array;
}

function planFft(size: number, radices: number[]): FftStage[] {
  const stages: FftStage[] = [];
  let n = size;
  let stride = 1;
  for (const radix of radices) {
    const subLength = n / radix;
    const twiddleRe = new Float64Array(subLength * radix);
    const twiddleIm = new Float64Array(subLength * radix);
    for (let p = 0; p < subLength; p++) {
      for (let t = 0; t < radix; t++) {
        const angle = (-2 * Math.PI * ((p * t) % n)) / n;
        twiddleRe[p * radix + t] = Math.cos(angle);
        twiddleIm[p * radix + t] = Math.sin(angle);
      }
    }
    const rootRe = new Float64Array(radix);
    const rootIm = new Float64Array(radix);
    for (let j = 0; j < radix; j++) {
      rootRe[j] = Math.cos((-2 * Math.PI * j) / radix);
      rootIm[j] = Math.sin((-2 * Math.PI * j) / radix);
    }
    stages.push({ radix, subLength, stride, twiddleRe, twiddleIm, rootRe, rootIm });
    n = subLength;
    stride *= radix;
  }
  if (n !== 1) throw new Error(`FFT radices ${radices.join('·')} do not multiply to ${size}`);
  return stages;
}

const FFT_STAGES = planFft(N_FFT, [4, 4, 5, 5]);

/** In-place-looking FFT of (re, im); uses (re2, im2) as the ping-pong buffer. Returns the result arrays. */
function fft(re: Float64Array, im: Float64Array, re2: Float64Array, im2: Float64Array): [Float64Array, Float64Array] {
  let xr = re;
  let xi = im;
  let yr = re2;
  let yi = im2;
  const ar = new Float64Array(5);
  const ai = new Float64Array(5);
  for (const { radix, subLength, stride, twiddleRe, twiddleIm, rootRe, rootIm } of FFT_STAGES) {
    for (let p = 0; p < subLength; p++) {
      for (let q = 0; q < stride; q++) {
        for (let k = 0; k < radix; k++) {
          const index = q + stride * (p + k * subLength);
          ar[k] = xr[index];
          ai[k] = xi[index];
        }
        for (let t = 0; t < radix; t++) {
          let sumRe = 0;
          let sumIm = 0;
          for (let k = 0; k < radix; k++) {
            const j = (t * k) % radix;
            sumRe += ar[k] * rootRe[j] - ai[k] * rootIm[j];
            sumIm += ar[k] * rootIm[j] + ai[k] * rootRe[j];
          }
          const w = p * radix + t;
          const out = q + stride * (radix * p + t);
          yr[out] = sumRe * twiddleRe[w] - sumIm * twiddleIm[w];
          yi[out] = sumRe * twiddleIm[w] + sumIm * twiddleRe[w];
        }
      }
    }
    [xr, yr] = [yr, xr];
    [xi, yi] = [yi, xi];
  }
  return [xr, xi];
}

/** Power spectrum |rfft(x)|² of one 400-sample frame (exposed for tests). */
export function powerSpectrum(frame: Float64Array): Float64Array {
  if (frame.length !== N_FFT) throw new EarshotError(`powerSpectrum needs ${N_FFT} samples, got ${frame.length}.`, 'logmel/bad-input');
  const [re, im] = fft(Float64Array.from(frame), new Float64Array(N_FFT), new Float64Array(N_FFT), new Float64Array(N_FFT));
  const power = new Float64Array(N_FREQS);
  for (let k = 0; k < N_FREQS; k++) power[k] = re[k] * re[k] + im[k] * im[k];
  return power;
}

// ---------------------------------------------------------------------------------------------

/** Periodic Hann window (torch.hann_window default): w[n] = 0.5 − 0.5·cos(2πn/N). */
const HANN = Float64Array.from({ length: N_FFT }, (_, n) => 0.5 - 0.5 * Math.cos((2 * Math.PI * n) / N_FFT));

/**
 * Log-mel spectrogram of 16 kHz mono audio → Float32Array [nMels][nFrames] (mel-major, the
 * layout the encoder's conv1 reads). Audio longer than the window is cut, shorter is zero-padded.
 */
export function logMel(samples16k: Float32Array, opts: LogMelOptions): Float32Array {
  const { nMels, nFrames } = opts;
  requirePositiveInteger(nMels, 'nMels');
  requirePositiveInteger(nFrames, 'nFrames');
  if (nFrames < 2) {
    throw new EarshotError(`logMel needs nFrames ≥ 2 (reflect padding needs more than ${N_FFT / 2} samples), got ` +
      `${nFrames}; use 2 × max_source_positions from the model config.`, 'logmel/bad-option');
  }
  const windowLength = nFrames * HOP_LENGTH;
  const used = Math.min(samples16k.length, windowLength);
  for (let i = 0; i < used; i++) {
    if (!Number.isFinite(samples16k[i])) {
      throw new EarshotError(`audio sample ${i} is ${samples16k[i]}; the waveform must be finite — check the decoder or ` +
        'the clip.', 'logmel/non-finite');
    }
  }

  // pad_or_trim, then torch.stft(center=True) reflect padding: x[200..1] ‖ x ‖ x[L−2..L−201].
  const pad = N_FFT / 2;
  const padded = new Float64Array(windowLength + 2 * pad); // [L + 400]
  for (let i = 0; i < used; i++) padded[pad + i] = samples16k[i];
  for (let i = 1; i <= pad; i++) {
    padded[pad - i] = padded[pad + i];
    padded[pad + windowLength - 1 + i] = padded[pad + windowLength - 1 - i];
  }

  const { first, last, weights } = sparseFilters(nMels);
  const mel = new Float64Array(nMels * nFrames); // [nMels][nFrames] log10 mel power
  const re = new Float64Array(N_FFT);
  const im = new Float64Array(N_FFT);
  const re2 = new Float64Array(N_FFT);
  const im2 = new Float64Array(N_FFT);
  const power = new Float64Array(N_FREQS); // [201]
  let globalMax = -Infinity;

  // The STFT has nFrames + 1 frames; the last one is dropped, so it is never computed.
  for (let t = 0; t < nFrames; t++) {
    const start = t * HOP_LENGTH;
    for (let n = 0; n < N_FFT; n++) re[n] = padded[start + n] * HANN[n];
    im.fill(0);
    const [xr, xi] = fft(re, im, re2, im2);
    for (let k = 0; k < N_FREQS; k++) power[k] = xr[k] * xr[k] + xi[k] * xi[k];
    for (let m = 0; m < nMels; m++) {
      let sum = 0;
      const row = m * N_FREQS;
      for (let k = first[m]; k < last[m]; k++) sum += weights[row + k] * power[k];
      const value = Math.log10(Math.max(sum, 1e-10));
      mel[m * nFrames + t] = value;
      if (value > globalMax) globalMax = value;
    }
  }

  // Dynamic range is capped at 8 decades below the loudest bin of the whole window. The floor
  // is re-derived from the float32 maximum so that max − min ≤ 2 holds exactly after the cast
  // (rounding max up and min down independently could otherwise exceed it by one ulp).
  const floor = globalMax - 8;
  const outFloor = float32AtLeast(Math.fround((globalMax + 4) / 4) - 2);
  const out = new Float32Array(nMels * nFrames); // [nMels][nFrames]
  for (let i = 0; i < out.length; i++) out[i] = Math.max((Math.max(mel[i], floor) + 4) / 4, outFloor);
  return out;
}

const roundingF32 = new Float32Array(1);
const roundingBits = new Int32Array(roundingF32.buffer);

/** The smallest float32 value ≥ x (x finite). */
function float32AtLeast(x: number): number {
  roundingF32[0] = x;
  if (roundingF32[0] >= x) return roundingF32[0];
  // Step one ulp towards +inf: up in magnitude for positives, down for negatives.
  roundingBits[0] += roundingF32[0] > 0 ? 1 : roundingF32[0] < 0 ? -1 : 1;
  return roundingF32[0];
}

function requirePositiveInteger(value: number, name: string): void {
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new EarshotError(`${name} must be a positive integer, got ${value}; for Whisper use nMels 80 (128 for ` +
      'large-v3) and nFrames 2 × max_source_positions (3000).', 'logmel/bad-option');
  }
}
