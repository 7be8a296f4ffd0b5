/**
 * Audio in: WAV bytes → float channels → mono → 16 kHz, the input `logMel` expects.
 *
 * WAV container parsing and the companded WAV codecs (A-law, µ-law) come from the
 * `wavefile` package; PCM/float sample unpacking is done here so that integer formats scale
 * exactly like openai's loader (int16 / 32768) and WAVE_FORMAT_EXTENSIBLE float files (what
 * ffmpeg and sox write for 24-bit and float output) are read as floats.
 *
 * Resampling is a Kaiser-windowed sinc (polyphase, exact rational ratio), band-limited to just
 * under the lower Nyquist rate so downsampling does not alias, tuned like ffmpeg's default.
 */
import * as wavefileModule from 'wavefile';
import { EarshotError } from './errors.ts';

export const WHISPER_SAMPLE_RATE = 16000;

// wavefile ships a UMD bundle as `main` and ES sources as `module`. Node's ESM loader sees the
// CommonJS bundle and exposes only a default export ({ WaveFile }); Vite follows `module` and
// exposes the named export. Accept both shapes.
type WaveFileClass = typeof wavefileModule.WaveFile;
const WaveFile: WaveFileClass =
  (wavefileModule as { WaveFile?: WaveFileClass }).WaveFile ??
  (wavefileModule as unknown as { default: { WaveFile: WaveFileClass } }).default.WaveFile;

/** The fields of wavefile's parsed `fmt ` and `data` chunks that this module reads. */
interface WavFormat {
  audioFormat: number;
  numChannels: number;
  sampleRate: number;
  blockAlign: number;
  bitsPerSample: number;
  subformat?: number[];
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_ALAW = 6;
const WAVE_FORMAT_MULAW = 7;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
/** Streaming writers put this in the data chunk size when the length is unknown. */
const UNKNOWN_DATA_SIZE = 0xffffffff;

const EXPORT_HINT = 'export it as 16-bit PCM WAV (e.g. `ffmpeg -i in.ext -ar 16000 -ac 1 out.wav`)';

export interface DecodedAudio {
  /** One Float32Array per channel, samples in [-1, 1). */
  channels: Float32Array[];
  sampleRate: number;
}

/**
 * Decode a WAV file: 8/16/24/32-bit PCM, 32/64-bit float, A-law, µ-law; any channel count.
 * IMA ADPCM is refused: wavefile's decoder does not reproduce sox/ffmpeg ADPCM files.
 */
export function decodeWav(bytes: Uint8Array): DecodedAudio {
  const { wav, fmt, data } = parseWav(bytes);
  // Read these before pcmPayload: wavefile's codec conversions rebuild (and first clear) `fmt`.
  const channelCount = fmt.numChannels;
  const sampleRate = fmt.sampleRate;
  const { format, bits, blockAlign, raw } = pcmPayload(wav, fmt, data);

  const bytesPerSample = Math.ceil(bits / 8);
  const supported =
    (format === WAVE_FORMAT_PCM && bits >= 8 && bits <= 32) ||
    (format === WAVE_FORMAT_IEEE_FLOAT && (bits === 32 || bits === 64));
  if (!supported) {
    throw new EarshotError(`unsupported WAV encoding (format tag ${format}, ${bits} bits per sample); ${EXPORT_HINT}.`,
      'audio/unsupported');
  }
  if (blockAlign < bytesPerSample * channelCount) {
    throw new EarshotError(`the WAV header is inconsistent (block size ${blockAlign} bytes for ${channelCount} channels of ` +
      `${bits}-bit audio); ${EXPORT_HINT}.`, 'audio/bad-wav');
  }
  const frames = Math.floor(raw.length / blockAlign);
  if (frames === 0) {
    throw new EarshotError('the WAV file contains no audio samples; record or choose a clip that is not empty.', 'audio/empty');
  }

  const bigEndian = wav.container === 'RIFX';
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  // Container size decides the integer scale: 12-bit audio in 16-bit words is left-justified.
  const intScale = 1 / 2 ** (bytesPerSample * 8 - 1);
  const channels: Float32Array[] = [];
  for (let c = 0; c < channelCount; c++) {
    const out = new Float32Array(frames); // [frames]
    for (let f = 0; f < frames; f++) {
      out[f] = readSample(view, f * blockAlign + c * bytesPerSample, format, bytesPerSample, bigEndian, intScale);
    }
    if (format === WAVE_FORMAT_IEEE_FLOAT) {
      const bad = out.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) {
        throw new EarshotError(`the WAV file has a non-finite sample (${out[bad]}) at ${(bad / sampleRate).toFixed(3)} s ` +
          `in channel ${c}; the recording is corrupt — re-export it.`, 'audio/non-finite');
      }
    }
    channels.push(out);
  }
  return { channels, sampleRate };
}

type WaveFileInstance = InstanceType<WaveFileClass>;
interface WavData {
  chunkSize: number;
  samples: Uint8Array;
}

/** Parse the RIFF container with wavefile and check the header against the file size. */
function parseWav(bytes: Uint8Array): { wav: WaveFileInstance; fmt: WavFormat; data: WavData } {
  if (!(bytes instanceof Uint8Array)) {
    throw new EarshotError("decodeWav expects the file's bytes as a Uint8Array; wrap an ArrayBuffer with " +
      'new Uint8Array(buffer).', 'audio/bad-input');
  }
  const tag = String.fromCharCode(...bytes.subarray(0, 4));
  const form = String.fromCharCode(...bytes.subarray(8, 12));
  if (bytes.length < 12 || (tag !== 'RIFF' && tag !== 'RIFX') || form !== 'WAVE') {
    throw new EarshotError(`the audio is ${describeContainer(bytes)}; ${EXPORT_HINT}.`, 'audio/not-wav');
  }
  const wav = new WaveFile();
  try {
    wav.fromBuffer(bytes);
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/\.$/, '') : String(err);
    throw new EarshotError(`the WAV file could not be parsed (${reason}); it may be truncated or damaged — ${EXPORT_HINT}.`,
      'audio/bad-wav');
  }
  const fmt = wav.fmt as WavFormat;
  const data = wav.data as WavData;
  if (fmt.numChannels === 0) {
    throw new EarshotError(`the WAV file declares zero channels; ${EXPORT_HINT}.`, 'audio/no-channels');
  }
  if (!Number.isInteger(fmt.numChannels) || !(fmt.blockAlign > 0)) {
    throw new EarshotError(`the WAV format header is damaged or truncated; ${EXPORT_HINT}.`, 'audio/bad-wav');
  }
  if (!(fmt.sampleRate > 0)) {
    throw new EarshotError(`the WAV file declares a sample rate of ${fmt.sampleRate} Hz; ${EXPORT_HINT}.`, 'audio/bad-rate');
  }
  // wavefile slices the chunk up to the end of the buffer, so a shorter slice means the file
  // stops before the audio it announces.
  if (data.chunkSize !== UNKNOWN_DATA_SIZE && data.samples.length < data.chunkSize) {
    throw new EarshotError(`the WAV file is truncated: it announces ${data.chunkSize} bytes of audio but holds ` +
      `${data.samples.length}; re-export or re-download it.`, 'audio/truncated');
  }
  return { wav, fmt, data };
}

/** The sample bytes as plain PCM or float; A-law/µ-law audio is expanded to 16-bit PCM first. */
function pcmPayload(wav: WaveFileInstance, fmt: WavFormat, data: WavData):
  { format: number; bits: number; blockAlign: number; raw: Uint8Array } {
  let format = fmt.audioFormat;
  if (format === WAVE_FORMAT_EXTENSIBLE) format = fmt.subformat?.[0] ?? 0; // the GUID starts with the format tag
  const declaredBytes = data.chunkSize === UNKNOWN_DATA_SIZE ? data.samples.length : data.chunkSize;
  const channelCount = fmt.numChannels;
  if (format !== WAVE_FORMAT_ALAW && format !== WAVE_FORMAT_MULAW) {
    // subarray drops the RIFF pad byte wavefile includes for odd sizes.
    return { format, bits: fmt.bitsPerSample, blockAlign: fmt.blockAlign, raw: data.samples.subarray(0, declaredBytes) };
  }
  try {
    if (format === WAVE_FORMAT_ALAW) wav.fromALaw();
    else wav.fromMuLaw();
  } catch (err) {
    throw new EarshotError(`the compressed WAV audio could not be decoded (${String(err)}); ${EXPORT_HINT}.`, 'audio/bad-wav');
  }
  // Now 16-bit PCM. One byte per companded sample: drop what wavefile decoded from the RIFF pad byte.
  const raw = (wav.data as WavData).samples.subarray(0, Math.floor(declaredBytes / channelCount) * 2 * channelCount);
  return { format: WAVE_FORMAT_PCM, bits: 16, blockAlign: 2 * channelCount, raw };
}

/** Name the format of non-WAV bytes, so the message says what was actually given. */
function describeContainer(bytes: Uint8Array): string {
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (ascii(0, 4) === 'fLaC') return 'a FLAC file, not WAV';
  if (ascii(0, 4) === 'OggS') return 'an Ogg file, not WAV';
  if (ascii(0, 4) === 'RF64') return 'an RF64 (>4 GB) WAV, which Earshot does not read';
  if (ascii(0, 3) === 'ID3' || (bytes[0] === 0xff && (bytes[1] & 0xe0) === 0xe0)) return 'an MP3 file, not WAV';
  if (ascii(4, 8) === 'ftyp') return 'an MP4/M4A file, not WAV';
  if (bytes[0] === 0x1a && bytes[1] === 0x45 && bytes[2] === 0xdf && bytes[3] === 0xa3) return 'a WebM/Matroska file, not WAV';
  return bytes.length === 0 ? 'empty (0 bytes)' : 'not a WAV file (no RIFF/WAVE header)';
}

function readSample(view: DataView, at: number, format: number, bytes: number, bigEndian: boolean, intScale: number): number {
  const little = !bigEndian;
  if (format === WAVE_FORMAT_IEEE_FLOAT) return bytes === 4 ? view.getFloat32(at, little) : view.getFloat64(at, little);
  switch (bytes) {
    case 1:
      return (view.getUint8(at) - 128) / 128; // 8-bit WAV is unsigned, centred on 128
    case 2:
      return view.getInt16(at, little) * intScale;
    case 3: {
      const b0 = view.getUint8(at);
      const b1 = view.getUint8(at + 1);
      const b2 = view.getUint8(at + 2);
      const unsigned = little ? b0 | (b1 << 8) | (b2 << 16) : b2 | (b1 << 8) | (b0 << 16);
      return ((unsigned << 8) >> 8) * intScale; // sign-extend 24 → 32 bits
    }
    default:
      return view.getInt32(at, little) * intScale;
  }
}

/** Average the channels (ffmpeg's `-ac 1` stereo downmix); a single channel is returned as is. */
export function toMono(channels: Float32Array[]): Float32Array {
  if (channels.length === 0) {
    throw new EarshotError('toMono got zero channels; decode the audio first and pass its channels.', 'audio/no-channels');
  }
  if (channels.length === 1) return channels[0];
  const length = channels[0].length;
  if (channels.some((ch) => ch.length !== length)) {
    throw new EarshotError('toMono got channels of different lengths; pass the channels of one decoded clip.',
      'audio/bad-input');
  }
  const mono = new Float32Array(length); // [samples]
  const scale = 1 / channels.length;
  for (let i = 0; i < length; i++) {
    let sum = 0;
    for (const ch of channels) sum += ch[i];
    mono[i] = sum * scale;
  }
  return mono;
}

// ---------------------------------------------------------------------------------------------
// Band-limited resampling.

export interface ResampleOptions {
  /** Zero crossings of the sinc on each side of the centre tap. Default 16. */
  zeros?: number;
  /** Cutoff as a fraction of the lower Nyquist rate. Default 0.97: 7.76 kHz at 16 kHz output. */
  rolloff?: number;
  /** Kaiser window β. Default 9 (~90 dB stop-band attenuation). */
  beta?: number;
}

// The defaults mirror ffmpeg's swresample defaults (filter_size 32, cutoff 0.97, Kaiser β 9),
// because Whisper was trained on ffmpeg-resampled audio: on jfk.flac (44.1 kHz) our output is
// within 6e-5 relative RMS of ffmpeg's and its log-mel within 0.012. A sharper filter (zeros 64,
// β 10) removes more of the 8–9 kHz band but moves the top mel bands further from training.
const DEFAULT_RESAMPLE: Required<ResampleOptions> = { zeros: 16, rolloff: 0.97, beta: 9 };
/** Largest rate accepted (well above any real recording). */
const MAX_RATE = 1_536_000;
/** Largest cached polyphase table, in coefficients (16 MB of float64). */
const MAX_TABLE = 1 << 21;

function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const quarterSquare = (x * x) / 4;
  for (let k = 1; k < 200 && term > sum * 1e-17; k++) {
    term *= quarterSquare / (k * k);
    sum += term;
  }
  return sum;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/**
 * Resample with a Kaiser-windowed sinc. Output sample n sits at input time n·from/to; the
 * output covers the input's duration (ceil(length·to/from) samples). Input beyond the edges
 * counts as silence.
 */
export function resample(samples: Float32Array, fromRate: number, toRate: number, options: ResampleOptions = {}): Float32Array {
  const { zeros, rolloff, beta } = { ...DEFAULT_RESAMPLE, ...options };
  if (!(zeros >= 1 && zeros <= 256 && rolloff > 0 && rolloff <= 1 && beta >= 0 && beta <= 50)) {
    throw new EarshotError(`resample options out of range (zeros 1–256, rolloff (0, 1], beta 0–50), got ` +
      `${JSON.stringify(options)}; omit them to use the defaults.`, 'audio/bad-option');
  }
  for (const [name, rate] of [['fromRate', fromRate], ['toRate', toRate]] as const) {
    if (!Number.isSafeInteger(rate) || rate <= 0 || rate > MAX_RATE) {
      throw new EarshotError(`${name} must be a whole number of Hz between 1 and ${MAX_RATE}, got ${rate}; pass the ` +
        "clip's sample rate as decoded.", 'audio/bad-rate');
    }
  }
  if (fromRate === toRate) return samples.slice();
  const divisor = gcd(fromRate, toRate);
  const up = toRate / divisor; // output phases per input step
  const down = fromRate / divisor;
  const inputLength = samples.length;
  const outputLength = Math.ceil((inputLength * up) / down);

  // Cutoff in cycles per input sample, below both Nyquist rates.
  const cutoff = 0.5 * rolloff * Math.min(1, toRate / fromRate);
  const halfWidth = zeros / (2 * cutoff); // input samples each side
  const reach = Math.ceil(halfWidth);
  const taps = 2 * reach; // input indices base − reach + 1 … base + reach
  const i0Beta = besselI0(beta);

  // Polyphase table [up][taps], filled lazily. Coprime rates can need up to `toRate` phases;
  // past MAX_TABLE entries we keep one row and recompute it per output sample instead.
  const cachePhases = up * taps <= MAX_TABLE;
  const table = new Float64Array(cachePhases ? up * taps : taps); // [up][taps] or [1][taps]
  const ready = new Uint8Array(cachePhases ? up : 0);
  const rowOf = (phase: number): number => (cachePhases ? phase * taps : 0);
  const fillPhase = (phase: number): void => {
    const frac = phase / up; // output position inside the input step
    const row = rowOf(phase);
    let sum = 0;
    for (let j = 0; j < taps; j++) {
      const x = j - reach + 1 - frac; // distance from the output instant, in input samples
      const u = x / halfWidth;
      let weight = 0;
      if (Math.abs(u) < 1) {
        const arg = 2 * cutoff * x;
        const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
        weight = 2 * cutoff * sinc * (besselI0(beta * Math.sqrt(1 - u * u)) / i0Beta);
      }
      table[row + j] = weight;
      sum += weight;
    }
    // Unit DC gain per phase, so a constant stays exactly constant.
    for (let j = 0; j < taps; j++) table[row + j] /= sum;
    if (cachePhases) ready[phase] = 1;
  };

  const out = new Float32Array(outputLength); // [outputLength]
  for (let n = 0; n < outputLength; n++) {
    const position = n * down; // input time × up
    const base = Math.floor(position / up);
    const phase = position - base * up;
    if (!cachePhases || ready[phase] === 0) fillPhase(phase);
    const row = rowOf(phase);
    const start = base - reach + 1;
    let acc = 0;
    if (start >= 0 && start + taps <= inputLength) {
      for (let j = 0; j < taps; j++) acc += samples[start + j] * table[row + j];
    } else {
      const lo = Math.max(0, -start);
      const hi = Math.min(taps, inputLength - start);
      for (let j = lo; j < hi; j++) acc += samples[start + j] * table[row + j];
    }
    out[n] = acc;
  }
  return out;
}

/** WAV bytes → mono float32 at 16 kHz, ready for `logMel`. */
export function loadAudio16k(bytes: Uint8Array): Float32Array {
  const { channels, sampleRate } = decodeWav(bytes);
  return resample(toMono(channels), sampleRate, WHISPER_SAMPLE_RATE);
}

export type WavSampleFormat = 'pcm16' | 'pcm24' | 'pcm32' | 'float32';

/**
 * Encode float channels (samples in [-1, 1]) as a WAV file: the inverse of `decodeWav`, for
 * presets, tools and tests. Integer formats round to nearest and clip; a plain 16-byte `fmt `
 * chunk is written for any channel count (every reader Earshot targets accepts it).
 */
export function encodeWav(channels: Float32Array[], sampleRate: number, format: WavSampleFormat = 'pcm16'): Uint8Array {
  if (channels.length === 0 || channels.length > 65535) {
    throw new EarshotError(`encodeWav needs 1–65535 channels, got ${channels.length}.`, 'audio/no-channels');
  }
  const frames = channels[0].length;
  if (channels.some((ch) => ch.length !== frames)) {
    throw new EarshotError('encodeWav got channels of different lengths; pass the channels of one clip.', 'audio/bad-input');
  }
  if (!Number.isSafeInteger(sampleRate) || sampleRate <= 0 || sampleRate > MAX_RATE) {
    throw new EarshotError(`encodeWav needs a whole-number sample rate in Hz, got ${sampleRate}.`, 'audio/bad-rate');
  }
  channels.forEach((ch, c) => {
    const bad = ch.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) {
      throw new EarshotError(`encodeWav got a non-finite sample (${ch[bad]}) at index ${bad} of channel ${c}; fix the ` +
        'signal before encoding.', 'audio/non-finite');
    }
  });
  const bytesPerSample = format === 'pcm16' ? 2 : format === 'pcm24' ? 3 : 4;
  const blockAlign = bytesPerSample * channels.length;
  const dataBytes = frames * blockAlign;
  if (44 + dataBytes + (dataBytes % 2) > 0xffffffff) {
    throw new EarshotError('the audio is too long for a WAV file (4 GB limit); encode a shorter clip.', 'audio/too-long');
  }
  const out = new Uint8Array(44 + dataBytes + (dataBytes % 2));
  const view = new DataView(out.buffer);
  const ascii = (at: number, text: string): void => {
    for (let i = 0; i < text.length; i++) out[at + i] = text.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  view.setUint32(4, out.length - 8, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  view.setUint32(16, 16, true);
  view.setUint16(20, format === 'float32' ? WAVE_FORMAT_IEEE_FLOAT : WAVE_FORMAT_PCM, true);
  view.setUint16(22, channels.length, true);
  view.setUint32(24, sampleRate, true);
  view.setUint32(28, sampleRate * blockAlign, true);
  view.setUint16(32, blockAlign, true);
  view.setUint16(34, bytesPerSample * 8, true);
  ascii(36, 'data');
  view.setUint32(40, dataBytes, true);

  const maxInt = 2 ** (bytesPerSample * 8 - 1);
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < channels.length; c++) {
      const at = 44 + f * blockAlign + c * bytesPerSample;
      const x = channels[c][f];
      if (format === 'float32') {
        view.setFloat32(at, x, true);
        continue;
      }
      const q = Math.min(maxInt - 1, Math.max(-maxInt, Math.round(x * maxInt)));
      if (bytesPerSample === 2) view.setInt16(at, q, true);
      else if (bytesPerSample === 4) view.setInt32(at, q, true);
      else {
        view.setUint8(at, q & 0xff);
        view.setUint8(at + 1, (q >> 8) & 0xff);
        view.setUint8(at + 2, (q >> 16) & 0xff);
      }
    }
  }
  return out;
}
