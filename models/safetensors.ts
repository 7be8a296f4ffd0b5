/**
 * Reader and writer for the safetensors format (https://github.com/huggingface/safetensors):
 *
 *   [u64 little-endian N][N bytes of JSON header][data blob]
 *
 * The header maps tensor names to `{dtype, shape, data_offsets: [begin, end]}` with offsets
 * relative to the blob start, plus an optional `"__metadata__": {string: string}`.
 *
 * The whole header is validated against the file size in `parse()`, before any tensor is read,
 * so a truncated download or a hostile file fails with one clear message up front instead of
 * producing garbage weights later. Works on plain `Uint8Array`s (no fs/Buffer) so the same code
 * runs in the browser worker and in Node.
 */
import { EarshotError, describeValue } from './errors.ts';

/** Largest header we accept; the reference implementation uses the same 100 MB bound. */
const MAX_HEADER_BYTES = 100_000_000;

const DTYPE_BYTES = {
  F64: 8, F32: 4, F16: 2, BF16: 2,
  I64: 8, I32: 4, I16: 2, I8: 1,
  U64: 8, U32: 4, U16: 2, U8: 1,
  BOOL: 1, F8_E4M3: 1, F8_E5M2: 1,
} as const;

export type SafetensorsDtype = keyof typeof DTYPE_BYTES;

export interface TensorInfo {
  dtype: SafetensorsDtype;
  shape: number[];
  byteLength: number;
}

interface TensorEntry extends TensorInfo {
  name: string;
  /** Absolute byte range inside the parsed `bytes` (header already skipped). */
  start: number;
  end: number;
}

// Typed-array views below assume the host byte order matches the file's (little-endian);
// every browser and Node platform Earshot targets is little-endian.
const HOST_IS_LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function fail(message: string, code: string): never {
  throw new EarshotError(message, code);
}

const RETRY = 're-download the file or re-export it with safetensors';

export class SafeTensors {
  readonly metadata: Record<string, string>;
  readonly #bytes: Uint8Array;
  readonly #entries: Map<string, TensorEntry>;

  private constructor(bytes: Uint8Array, entries: Map<string, TensorEntry>, metadata: Record<string, string>) {
    this.#bytes = bytes;
    this.#entries = entries;
    this.metadata = metadata;
  }

  /** Parse and fully validate a safetensors file. The bytes are kept, not copied. */
  static parse(input: Uint8Array | ArrayBuffer): SafeTensors {
    const bytes = input instanceof Uint8Array ? input : new Uint8Array(input);
    if (bytes.byteLength < 8) {
      fail(`safetensors file is only ${bytes.byteLength} bytes, too short to hold the 8-byte header length; ${RETRY}.`,
        'safetensors/truncated');
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const lengthLow = view.getUint32(0, true);
    const lengthHigh = view.getUint32(4, true);
    const headerLength = lengthHigh * 2 ** 32 + lengthLow;
    if (headerLength > MAX_HEADER_BYTES) {
      if (lengthLow === 0x04034b50) {
        // "PK\x03\x04": a zip archive, which is what a PyTorch .bin/.pt checkpoint is.
        fail('this file is a zip archive (a PyTorch .bin checkpoint?), not safetensors; use the checkpoint\'s ' +
          'model.safetensors, or convert it with the safetensors library.', 'safetensors/header-too-large');
      }
      // Above 2^53 the value is not exact; it only says the first 8 bytes are not a length.
      const claimed = headerLength > Number.MAX_SAFE_INTEGER ? headerLength.toExponential(2) : String(headerLength);
      fail(`safetensors header claims ${claimed} bytes (limit ${MAX_HEADER_BYTES}); the file is corrupt or not ` +
        `safetensors — ${RETRY}.`, 'safetensors/header-too-large');
    }
    if (8 + headerLength > bytes.byteLength) {
      fail(`safetensors header claims ${headerLength} bytes but the file has only ${bytes.byteLength - 8} after the ` +
        `length field; the file is truncated — ${RETRY}.`, 'safetensors/truncated');
    }
    if (headerLength < 2) {
      fail(`safetensors header is ${headerLength} bytes, too short for a JSON object; ${RETRY}.`, 'safetensors/bad-header');
    }

    let header: unknown;
    try {
      const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + headerLength));
      header = JSON.parse(text);
    } catch {
      fail(`safetensors header is not valid UTF-8 JSON; the file is corrupt or not safetensors — ${RETRY}.`,
        'safetensors/bad-header');
    }
    if (typeof header !== 'object' || header === null || Array.isArray(header)) {
      fail(`safetensors header must be a JSON object, got ${describeValue(header)}; ${RETRY}.`, 'safetensors/bad-header');
    }

    const blobStart = 8 + headerLength;
    const blobLength = bytes.byteLength - blobStart;
    const entries = new Map<string, TensorEntry>();
    let metadata: Record<string, string> = {};

    for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
      if (name === '__metadata__') {
        metadata = parseMetadata(raw);
        continue;
      }
      const entry = parseEntry(name, raw, blobLength);
      entries.set(name, { ...entry, start: blobStart + entry.begin, end: blobStart + entry.end });
    }

    checkContiguous([...entries.values()], blobStart, blobLength);
    // Keep tensors in file order: deterministic and cache-friendly when loading in sequence.
    const ordered = new Map([...entries.entries()].sort((a, b) => a[1].start - b[1].start || a[1].end - b[1].end));
    return new SafeTensors(bytes, ordered, metadata);
  }

  /** Tensor names in file (data offset) order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.#entry(name);
    return { dtype: e.dtype, shape: [...e.shape], byteLength: e.byteLength };
  }

  /** The tensor's raw bytes as a view into the file (no copy; do not mutate). */
  getBytes(name: string): Uint8Array {
    const e = this.#entry(name);
    return this.#bytes.subarray(e.start, e.end);
  }

  /**
   * The tensor as a new Float32Array the caller owns. F32 is copied, F16/BF16 widen exactly,
   * F64 rounds to nearest, integer and BOOL dtypes convert by value (I64/U64 beyond 2^53 lose
   * precision, as any float32 would).
   */
  getF32(name: string): Float32Array {
    const e = this.#entry(name);
    if (!HOST_IS_LITTLE_ENDIAN) {
      fail('safetensors reading needs a little-endian host; run Earshot on x86/ARM hardware.', 'safetensors/endianness');
    }
    const count = e.byteLength / DTYPE_BYTES[e.dtype];
    switch (e.dtype) {
      case 'F32':
        // slice() copies into a fresh, 8-byte-aligned buffer, so unaligned offsets are fine.
        return new Float32Array(this.#bytes.slice(e.start, e.end).buffer);
      case 'F16':
        return halfBitsToFloat32(this.#typed(e, Uint16Array, count));
      case 'BF16':
        return bfloat16BitsToFloat32(this.#typed(e, Uint16Array, count));
      case 'F64':
        return new Float32Array(this.#typed(e, Float64Array, count));
      case 'I32':
        return new Float32Array(this.#typed(e, Int32Array, count));
      case 'U32':
        return new Float32Array(this.#typed(e, Uint32Array, count));
      case 'I16':
        return new Float32Array(this.#typed(e, Int16Array, count));
      case 'U16':
        return new Float32Array(this.#typed(e, Uint16Array, count));
      case 'I8':
        return new Float32Array(this.#typed(e, Int8Array, count));
      case 'U8':
      case 'BOOL':
        return new Float32Array(this.#bytes.subarray(e.start, e.end));
      case 'I64':
        return bigToFloat32(this.#typed(e, BigInt64Array, count));
      case 'U64':
        return bigToFloat32(this.#typed(e, BigUint64Array, count));
      case 'F8_E4M3':
      case 'F8_E5M2':
        return fail(`tensor "${name}" is ${e.dtype}, which Earshot cannot convert to float32; ` +
          'use an F32, F16 or BF16 export of the checkpoint.', 'safetensors/unsupported-dtype');
    }
  }

  #entry(name: string): TensorEntry {
    const e = this.#entries.get(name);
    if (e === undefined) {
      const examples = this.names().slice(0, 3).map((n) => `"${n}"`).join(', ');
      fail(`no tensor named "${name}" in this safetensors file (it has ${this.#entries.size} tensors` +
        `${examples ? `, e.g. ${examples}` : ''}); check that the checkpoint uses Hugging Face Whisper names.`,
        'safetensors/missing-tensor');
    }
    return e;
  }

  /** A typed view when the data is aligned for it, else a view over an aligned copy. */
  #typed<T>(e: TensorEntry, Ctor: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T;
    BYTES_PER_ELEMENT: number }, count: number): T {
    const absolute = this.#bytes.byteOffset + e.start;
    if (absolute % Ctor.BYTES_PER_ELEMENT === 0) return new Ctor(this.#bytes.buffer, absolute, count);
    return new Ctor(this.#bytes.slice(e.start, e.end).buffer, 0, count);
  }
}

function parseMetadata(raw: unknown): Record<string, string> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail(`safetensors "__metadata__" must be an object of strings, got ${describeValue(raw)}; ${RETRY}.`,
      'safetensors/bad-metadata');
  }
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== 'string') {
      fail(`safetensors "__metadata__" entry "${key}" must be a string, got ${describeValue(value)}; ${RETRY}.`,
        'safetensors/bad-metadata');
    }
    out[key] = value;
  }
  return out;
}

function parseEntry(name: string, raw: unknown, blobLength: number): TensorInfo & { name: string; begin: number; end: number } {
  const where = `safetensors tensor "${name}"`;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    fail(`${where} must be described by an object, got ${describeValue(raw)}; ${RETRY}.`, 'safetensors/bad-entry');
  }
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, dtype)) {
    fail(`${where} has unknown dtype ${describeValue(dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(', ')}); ` +
      `${RETRY}.`, 'safetensors/bad-dtype');
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    fail(`${where} has shape ${describeValue(shape)}; dimensions must be non-negative integers — ${RETRY}.`,
      'safetensors/bad-shape');
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    fail(`${where} has data_offsets ${describeValue(offsets)}; expected [begin, end] with non-negative integers — ` +
      `${RETRY}.`, 'safetensors/bad-offsets');
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > blobLength) {
    fail(`${where} has data_offsets [${begin}, ${end}] outside the ${blobLength}-byte data section; the file is ` +
      `truncated or corrupt — ${RETRY}.`, 'safetensors/bad-offsets');
  }
  const itemBytes = DTYPE_BYTES[dtype as SafetensorsDtype];
  let elements = 1;
  for (const d of shape as number[]) elements *= d;
  if (elements * itemBytes !== end - begin) {
    fail(`${where}: shape ${describeValue(shape)} × ${dtype} needs ${elements * itemBytes} bytes but data_offsets span ` +
      `${end - begin}; ${RETRY}.`, 'safetensors/size-mismatch');
  }
  return { name, dtype: dtype as SafetensorsDtype, shape: [...(shape as number[])], byteLength: end - begin, begin, end };
}

/** Tensors must tile the data section exactly: no overlaps, no gaps, nothing left over. */
function checkContiguous(entries: TensorEntry[], blobStart: number, blobLength: number): void {
  const sorted = [...entries].sort((a, b) => a.start - b.start || a.end - b.end);
  let expected = blobStart;
  let previous: TensorEntry | undefined;
  for (const e of sorted) {
    if (e.start < expected) {
      fail(`safetensors tensors "${previous?.name}" and "${e.name}" overlap in the data section; the file is corrupt — ` +
        `${RETRY}.`, 'safetensors/overlap');
    }
    if (e.start > expected) {
      fail(`safetensors data section has a ${e.start - expected}-byte gap before tensor "${e.name}"; the file is ` +
        `corrupt — ${RETRY}.`, 'safetensors/gap');
    }
    expected = e.end;
    previous = e;
  }
  if (expected !== blobStart + blobLength) {
    fail(`safetensors data section has ${blobStart + blobLength - expected} trailing bytes that belong to no tensor; ` +
      `the file is corrupt — ${RETRY}.`, 'safetensors/trailing-bytes');
  }
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions (exact, table-driven in the hot direction).

let halfTable: Uint32Array | undefined;

/** float32 bit pattern for every float16 bit pattern, built once (256 KB). */
function halfToFloatTable(): Uint32Array {
  if (halfTable !== undefined) return halfTable;
  const table = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) table[h] = halfBitsToFloatBits(h);
  halfTable = table;
  return table;
}

/** Exact float16 → float32 bit conversion, including subnormals, ±inf and NaN payloads. */
function halfBitsToFloatBits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exponent = (h >>> 10) & 0x1f;
  let mantissa = h & 0x3ff;
  if (exponent === 0x1f) return (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
  if (exponent !== 0) return (sign | ((exponent + 112) << 23) | (mantissa << 13)) >>> 0;
  if (mantissa === 0) return sign >>> 0;
  // Subnormal half: normalise so the leading 1 becomes float32's implicit bit.
  let e = 113;
  while ((mantissa & 0x400) === 0) {
    mantissa <<= 1;
    e--;
  }
  return (sign | (e << 23) | ((mantissa & 0x3ff) << 13)) >>> 0;
}

/** Widen float16 bit patterns to float32 values (exact). */
export function halfBitsToFloat32(bits: Uint16Array): Float32Array {
  const table = halfToFloatTable();
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = table[bits[i]];
  return out;
}

/** Widen bfloat16 bit patterns to float32 values (exact: bf16 is the top half of f32). */
export function bfloat16BitsToFloat32(bits: Uint16Array): Float32Array {
  const out = new Float32Array(bits.length);
  const outBits = new Uint32Array(out.buffer);
  for (let i = 0; i < bits.length; i++) outBits[i] = bits[i] << 16;
  return out;
}

const scratchF32 = new Float32Array(1);
const scratchU32 = new Uint32Array(scratchF32.buffer);

/** The value of one float16 bit pattern. */
export function halfToFloat(bits: number): number {
  scratchU32[0] = halfBitsToFloatBits(bits & 0xffff);
  return scratchF32[0];
}

/** float32 → float16 bits, round to nearest even; overflow → ±inf, NaN stays NaN. */
export function floatToHalf(value: number): number {
  scratchF32[0] = value;
  const f = scratchU32[0];
  const sign = (f >>> 16) & 0x8000;
  const exponent = (f >>> 23) & 0xff;
  const mantissa = f & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa !== 0 ? 0x200 | (mantissa >>> 13) : 0);
  const e = exponent - 112; // rebias 127 → 15
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign; // below half the smallest subnormal: rounds to ±0
    const m = mantissa | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && (half & 1) === 1)) half++;
    return sign | half; // a carry out of the mantissa lands on the smallest normal, as it should
  }
  let half = (e << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++; // carry may reach inf: correct
  return sign | half;
}

/** float32 → bfloat16 bits, round to nearest even; NaN stays NaN. */
export function floatToBfloat16(value: number): number {
  scratchF32[0] = value;
  const f = scratchU32[0];
  if ((f & 0x7f800000) === 0x7f800000 && (f & 0x7fffff) !== 0) return (f >>> 16) | 0x40;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

function bigToFloat32(values: BigInt64Array | BigUint64Array): Float32Array {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = Number(values[i]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Writer (tests, fixtures, tools).

export interface TensorToWrite {
  shape: number[];
  data: Float32Array;
  dtype?: 'F32' | 'F16' | 'BF16';
}

/**
 * Serialise float tensors to safetensors bytes, in insertion order. The header is padded with
 * spaces to a multiple of 8 bytes so the data section starts 8-byte aligned (as the Python
 * writer does), which lets readers view F32 data without copying.
 */
export function writeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') {
        fail(`metadata "${key}" must be a string, got ${describeValue(value)}; convert it with String() first.`,
          'safetensors/bad-metadata');
      }
    }
    header.__metadata__ = metadata;
  }
  const payloads: Uint8Array[] = [];
  let offset = 0;
  for (const [name, tensor] of Object.entries(tensors)) {
    if (name === '__metadata__') fail('a tensor cannot be named "__metadata__"; rename it.', 'safetensors/bad-entry');
    const dtype = tensor.dtype ?? 'F32';
    if (!tensor.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      fail(`tensor "${name}" has shape ${describeValue(tensor.shape)}; dimensions must be non-negative integers.`,
        'safetensors/bad-shape');
    }
    const elements = tensor.shape.reduce((a, b) => a * b, 1);
    if (elements !== tensor.data.length) {
      fail(`tensor "${name}": shape ${describeValue(tensor.shape)} holds ${elements} values but data has ` +
        `${tensor.data.length}; fix the shape or the data.`, 'safetensors/size-mismatch');
    }
    const payload = encodeFloats(tensor.data, dtype);
    header[name] = { dtype, shape: [...tensor.shape], data_offsets: [offset, offset + payload.byteLength] };
    payloads.push(payload);
    offset += payload.byteLength;
  }

  let headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(headerBytes.byteLength / 8) * 8;
  if (padded !== headerBytes.byteLength) {
    const withSpaces = new Uint8Array(padded).fill(0x20);
    withSpaces.set(headerBytes);
    headerBytes = withSpaces;
  }
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const payload of payloads) {
    out.set(payload, at);
    at += payload.byteLength;
  }
  return out;
}

function encodeFloats(data: Float32Array, dtype: 'F32' | 'F16' | 'BF16'): Uint8Array {
  if (dtype === 'F32') return new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  const bits = new Uint16Array(data.length);
  const convert = dtype === 'F16' ? floatToHalf : floatToBfloat16;
  for (let i = 0; i < data.length; i++) bits[i] = convert(data[i]);
  return new Uint8Array(bits.buffer);
}
