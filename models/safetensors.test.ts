import { describe, expect, it } from 'vitest';
import { EarshotError } from './errors.ts';
import {
  SafeTensors,
  floatToBfloat16,
  floatToHalf,
  halfBitsToFloat32,
  halfToFloat,
  writeSafetensors,
} from './safetensors.ts';

/** Assemble a safetensors file by hand: header (object or raw text) + blob. */
function build(header: unknown, blob: Uint8Array = new Uint8Array(0), headerLength?: bigint): Uint8Array {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const headerBytes = new TextEncoder().encode(text);
  const out = new Uint8Array(8 + headerBytes.length + blob.length);
  new DataView(out.buffer).setBigUint64(0, headerLength ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(blob, 8 + headerBytes.length);
  return out;
}

function bytesOf(array: ArrayBufferView): Uint8Array {
  return new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
}

function parseError(bytes: Uint8Array): EarshotError {
  try {
    SafeTensors.parse(bytes);
  } catch (err) {
    expect(err).toBeInstanceOf(EarshotError);
    expect((err as Error).message).not.toContain('\n');
    return err as EarshotError;
  }
  throw new Error('expected SafeTensors.parse to throw');
}


describe('float16 / bfloat16 conversions', () => {
  it('widens known float16 bit patterns exactly', () => {
    const cases: [number, number][] = [
      [0x0000, 0], [0x3c00, 1], [0xc000, -2], [0x3555, 0.333251953125], [0x7bff, 65504],
      [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24], [0x0400, 2 ** -14], [0x8001, -(2 ** -24)],
      [0x7c00, Infinity], [0xfc00, -Infinity],
    ];
    for (const [bits, value] of cases) expect(halfToFloat(bits)).toBe(value);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(Number.isNaN(halfToFloat(0xfd01))).toBe(true);
  });

  it('round-trips all 65536 float16 patterns through float32 (table path too)', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const widened = halfBitsToFloat32(all);
    // Read NaN bits through an integer view: loading a NaN into a JS number may quieten it.
    const widenedBits = new Uint32Array(widened.buffer);
    for (let h = 0; h < 65536; h++) {
      const isNaN = (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;
      if (isNaN) {
        expect(Number.isNaN(widened[h])).toBe(true);
        // Payload and sign survive widening: f32 mantissa = half mantissa << 13.
        expect(widenedBits[h] >>> 13).toBe((((h & 0x8000) << 3) | 0xff << 10 | (h & 0x3ff)) >>> 0);
      } else {
        expect(widened[h]).toBe(halfToFloat(h));
        expect(floatToHalf(widened[h])).toBe(h);
      }
    }
  });

  it('narrows to float16 with round-to-nearest-even, overflow and underflow', () => {
    expect(floatToHalf(65519)).toBe(0x7bff); // below the halfway point to 65536
    expect(floatToHalf(65520)).toBe(0x7c00); // halfway rounds to even = inf
    expect(floatToHalf(1e6)).toBe(0x7c00);
    expect(floatToHalf(-1e6)).toBe(0xfc00);
    expect(floatToHalf(2 ** -25)).toBe(0x0000); // tie between 0 and the smallest subnormal → even (0)
    expect(floatToHalf(1.5 * 2 ** -25)).toBe(0x0001);
    expect(floatToHalf(3 * 2 ** -25)).toBe(0x0002); // tie 1.5 ulp → even (2)
    expect(floatToHalf(2 ** -30)).toBe(0x0000);
    expect(floatToHalf(1 + 2 ** -11)).toBe(0x3c00); // tie → even mantissa
    expect(floatToHalf(1 + 3 * 2 ** -11)).toBe(0x3c02);
    expect(floatToHalf(2 ** -14 - 2 ** -25)).toBe(0x0400); // subnormal rounds up into the first normal
    expect(floatToHalf(NaN) & 0x7e00).toBe(0x7e00);
    expect(floatToHalf(-0)).toBe(0x8000);
  });

  it('narrows to bfloat16 with round-to-nearest-even', () => {
    expect(floatToBfloat16(1)).toBe(0x3f80);
    expect(floatToBfloat16(-2)).toBe(0xc000);
    expect(floatToBfloat16(Math.PI)).toBe(0x4049); // 0x40490fdb → 0x4049
    expect(floatToBfloat16(1 + 2 ** -8)).toBe(0x3f80); // tie → even
    expect(floatToBfloat16(1 + 3 * 2 ** -8)).toBe(0x3f82);
    expect(floatToBfloat16(Infinity)).toBe(0x7f80);
    expect(floatToBfloat16(3.4e38)).toBe(0x7f80); // rounds past the largest bf16
    expect(floatToBfloat16(NaN) & 0x7fc0).toBe(0x7fc0);
  });
});

describe('SafeTensors round trip', () => {
  it('writes and reads F32, F16 and BF16 with known bit patterns', () => {
    const values = new Float32Array([1, -2, 0.5, 65504, 2 ** -24, -0, Infinity, 3.140625]);
    const bytes = writeSafetensors(
      {
        'model.a': { shape: [2, 4], data: values },
        'model.b': { shape: [8], data: values, dtype: 'F16' },
        'model.c': { shape: [4, 2], data: values, dtype: 'BF16' },
        'model.empty': { shape: [0, 3], data: new Float32Array(0) },
      },
      { format: 'pt' },
    );
    const headerLength = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect(headerLength % 8).toBe(0);

    const st = SafeTensors.parse(bytes);
    expect(st.metadata).toEqual({ format: 'pt' });
    expect(st.names()).toEqual(['model.a', 'model.b', 'model.c', 'model.empty']);
    expect(st.has('model.a')).toBe(true);
    expect(st.has('nope')).toBe(false);
    expect(st.info('model.a')).toEqual({ dtype: 'F32', shape: [2, 4], byteLength: 32 });
    expect(st.info('model.b')).toEqual({ dtype: 'F16', shape: [8], byteLength: 16 });
    expect(st.info('model.empty')).toEqual({ dtype: 'F32', shape: [0, 3], byteLength: 0 });

    expect([...st.getF32('model.a')]).toEqual([...values]);
    expect([...st.getF32('model.b')]).toEqual([1, -2, 0.5, 65504, 2 ** -24, -0, Infinity, 3.140625]);
    expect([...new Uint16Array(st.getBytes('model.b').slice().buffer)]).toEqual(
      [0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000, 0x7c00, 0x4248]);
    expect([...new Uint16Array(st.getBytes('model.c').slice().buffer)]).toEqual(
      [0x3f80, 0xc000, 0x3f00, 0x4780, 0x3380, 0x8000, 0x7f80, 0x4049]);
    expect([...st.getF32('model.c')]).toEqual([1, -2, 0.5, 65536, 2 ** -24, -0, Infinity, 3.140625]); // 65504 rounds up in bf16
    expect(st.getF32('model.empty').length).toBe(0);
  });

  it('returns a copy the caller owns', () => {
    const st = SafeTensors.parse(writeSafetensors({ w: { shape: [2], data: new Float32Array([1, 2]) } }));
    st.getF32('w')[0] = 99;
    expect(st.getF32('w')[0]).toBe(1);
  });

  it('reads unaligned data by copying', () => {
    // A 7-byte header puts the blob at offset 15: neither 2- nor 4-byte aligned.
    const f32 = new Float32Array([1.5, -3.25]);
    const f16 = new Uint16Array([0x3c00, 0x0001, 0xfc00]);
    const i32 = new Int32Array([-7, 123456]);
    const f64 = new Float64Array([0.1, -1e300]);
    const i64 = new BigInt64Array([-5n, 2n ** 40n]);
    const parts = [bytesOf(f32), bytesOf(f16), bytesOf(i32), bytesOf(f64), bytesOf(i64)];
    const blob = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    const header: Record<string, unknown> = {};
    const dtypes = [['a', 'F32', [2]], ['b', 'F16', [3]], ['c', 'I32', [2]], ['d', 'F64', [2]], ['e', 'I64', [2]]] as const;
    let offset = 0;
    dtypes.forEach(([name, dtype, shape], i) => {
      blob.set(parts[i], offset);
      header[name] = { dtype, shape, data_offsets: [offset, offset + parts[i].length] };
      offset += parts[i].length;
    });
    const text = JSON.stringify(header);
    // Pad the header so the blob begins at an odd offset inside a larger, offset view.
    const padded = text + ' '.repeat((7 - ((8 + text.length) % 8) + 8) % 8);
    const file = build(padded, blob);
    const host = new Uint8Array(file.length + 1);
    host.set(file, 1);
    const st = SafeTensors.parse(host.subarray(1));
    expect([...st.getF32('a')]).toEqual([1.5, -3.25]);
    expect([...st.getF32('b')]).toEqual([1, 2 ** -24, -Infinity]);
    expect([...st.getF32('c')]).toEqual([-7, 123456]);
    expect([...st.getF32('d')]).toEqual([Math.fround(0.1), -Infinity]);
    expect([...st.getF32('e')]).toEqual([-5, 2 ** 40]);
  });

  it('accepts an ArrayBuffer and an empty file with only metadata', () => {
    const bytes = build({ __metadata__: { note: 'hi' } });
    const st = SafeTensors.parse(bytes.slice().buffer);
    expect(st.names()).toEqual([]);
    expect(st.metadata).toEqual({ note: 'hi' });
  });

  it('names the missing tensor and suggests what exists', () => {
    const st = SafeTensors.parse(writeSafetensors({ 'model.encoder.conv1.weight': { shape: [1], data: new Float32Array(1) } }));
    expect(() => st.getF32('model.encoder.conv2.weight')).toThrowError(/no tensor named "model.encoder.conv2.weight".*conv1/);
  });

  it('refuses to convert 8-bit float dtypes with a clear error', () => {
    const st = SafeTensors.parse(build({ q: { dtype: 'F8_E4M3', shape: [2], data_offsets: [0, 2] } }, new Uint8Array(2)));
    expect(() => st.getF32('q')).toThrowError(EarshotError);
    expect(() => st.getF32('q')).toThrowError(/F8_E4M3/);
  });

  it('validates inputs to the writer', () => {
    expect(() => writeSafetensors({ w: { shape: [3], data: new Float32Array(2) } })).toThrowError(EarshotError);
    expect(() => writeSafetensors({ w: { shape: [-1], data: new Float32Array(0) } })).toThrowError(EarshotError);
    expect(() => writeSafetensors({ __metadata__: { shape: [0], data: new Float32Array(0) } })).toThrowError(EarshotError);
  });
});

describe('SafeTensors rejects hostile files before reading any tensor', () => {
  const ok = (extra: Record<string, unknown> = {}) => ({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8] }, ...extra });
  const blob8 = new Uint8Array(8);

  const cases: [string, Uint8Array, string][] = [
    ['shorter than the length field', new Uint8Array(5), 'safetensors/truncated'],
    ['header length beyond the file', build(ok(), blob8, 10_000n), 'safetensors/truncated'],
    ['absurd header length', build(ok(), blob8, 200_000_000n), 'safetensors/header-too-large'],
    ['header length with the high word set', build(ok(), blob8, 2n ** 40n), 'safetensors/header-too-large'],
    ['empty header', build('', blob8), 'safetensors/bad-header'],
    ['invalid JSON', build('{"w": [', blob8), 'safetensors/bad-header'],
    ['invalid UTF-8', (() => { const b = build('{"w":1}  '); b[10] = 0xff; return b; })(), 'safetensors/bad-header'],
    ['JSON array', build([1, 2], blob8), 'safetensors/bad-header'],
    ['JSON null', build('null', blob8), 'safetensors/bad-header'],
    ['entry that is not an object', build({ w: 5 }, blob8), 'safetensors/bad-entry'],
    ['unknown dtype', build({ w: { dtype: 'F12', shape: [2], data_offsets: [0, 8] } }, blob8), 'safetensors/bad-dtype'],
    ['missing dtype', build({ w: { shape: [2], data_offsets: [0, 8] } }, blob8), 'safetensors/bad-dtype'],
    ['negative dimension', build({ w: { dtype: 'F32', shape: [-2], data_offsets: [0, 8] } }, blob8), 'safetensors/bad-shape'],
    ['fractional dimension', build({ w: { dtype: 'F32', shape: [2.5], data_offsets: [0, 8] } }, blob8), 'safetensors/bad-shape'],
    ['shape not an array', build({ w: { dtype: 'F32', shape: 2, data_offsets: [0, 8] } }, blob8), 'safetensors/bad-shape'],
    ['shape × dtype ≠ span', build({ w: { dtype: 'F32', shape: [3], data_offsets: [0, 8] } }, blob8), 'safetensors/size-mismatch'],
    ['F16 data sized like F32', build({ w: { dtype: 'F16', shape: [2], data_offsets: [0, 8] } }, blob8), 'safetensors/size-mismatch'],
    ['offsets past the end', build({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, blob8), 'safetensors/bad-offsets'],
    ['offsets reversed', build({ w: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }, blob8), 'safetensors/bad-offsets'],
    ['negative offset', build({ w: { dtype: 'F32', shape: [2], data_offsets: [-8, 0] } }, blob8), 'safetensors/bad-offsets'],
    ['three offsets', build({ w: { dtype: 'F32', shape: [2], data_offsets: [0, 8, 8] } }, blob8), 'safetensors/bad-offsets'],
    ['string offsets', build({ w: { dtype: 'F32', shape: [2], data_offsets: ['0', '8'] } }, blob8), 'safetensors/bad-offsets'],
    ['overlapping tensors', build(ok({ v: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }), blob8), 'safetensors/overlap'],
    ['gap between tensors', build({ w: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, blob8), 'safetensors/gap'],
    ['trailing bytes', build(ok(), new Uint8Array(12)), 'safetensors/trailing-bytes'],
    ['truncated blob', build(ok(), new Uint8Array(6)), 'safetensors/bad-offsets'],
    ['metadata not strings', build(ok({ __metadata__: { a: 1 } }), blob8), 'safetensors/bad-metadata'],
    ['metadata not an object', build(ok({ __metadata__: 'x' }), blob8), 'safetensors/bad-metadata'],
  ];

  it.each(cases)('%s', (_label, bytes, code) => {
    const err = parseError(bytes);
    expect(err.code).toBe(code);
    expect(err.message).toMatch(/safetensors/);
  });

  it('accepts the valid baseline of those cases', () => {
    expect(SafeTensors.parse(build(ok(), blob8)).names()).toEqual(['w']);
  });
});
