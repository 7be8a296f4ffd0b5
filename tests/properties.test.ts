/**
 * Property-based tests (fast-check) for the readers that take input from outside:
 * safetensors, WAV, hook names. Whatever arrives, the answer is a valid value or an
 * EarshotError with a message — never a crash, a hang or a different exception.
 * Run counts are fixed so CI time stays predictable; seeds are printed on failure.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeWav, encodeWav, type WavSampleFormat } from '../models/audio.ts';
import { EarshotError } from '../models/errors.ts';
import { expandHookPatterns, hookNames, parseHookName } from '../models/hooks.ts';
import { SafeTensors, writeSafetensors } from '../models/safetensors.ts';

const RUNS = 300;

/** Runs `fn`; anything thrown must be an EarshotError with a non-empty one-line message. */
function onlyEarshotErrors<T>(fn: () => T): T | EarshotError {
  try {
    return fn();
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(EarshotError);
    const message = (e as Error).message;
    expect(message.length).toBeGreaterThan(10);
    expect(message).not.toMatch(/\n/);
    return e as EarshotError;
  }
}

const shapeArb = fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 0, maxLength: 3 });
const tensorArb = shapeArb.chain((shape) => {
  const n = shape.reduce((a, b) => a * b, 1);
  return fc.record({
    shape: fc.constant(shape),
    data: fc.float32Array({ minLength: n, maxLength: n, noNaN: true, noDefaultInfinity: true, min: -1e4, max: 1e4 }),
    dtype: fc.constantFrom('F32' as const, 'F16' as const, 'BF16' as const),
  });
});
const fileArb = fc.dictionary(fc.stringMatching(/^[a-z][a-z0-9._]{0,12}$/), tensorArb, { minKeys: 1, maxKeys: 4 });

describe('safetensors reader', () => {
  it('round-trips any set of F32/F16/BF16 tensors', () => {
    fc.assert(
      fc.property(fileArb, (tensors) => {
        const st = SafeTensors.parse(writeSafetensors(tensors));
        expect(st.names().sort()).toEqual(Object.keys(tensors).sort());
        for (const [name, t] of Object.entries(tensors)) {
          expect(st.info(name).shape).toEqual(t.shape);
          const got = st.getF32(name);
          // F16 keeps 11 significant bits, BF16 8: relative error bounds with a little slack.
          const rel = t.dtype === 'F32' ? 0 : t.dtype === 'F16' ? 2 ** -10 : 2 ** -7;
          t.data.forEach((v, i) => expect(Math.abs(got[i] - v)).toBeLessThanOrEqual(rel * Math.abs(v) + (t.dtype === 'F16' ? 6e-5 : 1e-38)));
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('answers any byte string with a file or an EarshotError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        const r = onlyEarshotErrors(() => SafeTensors.parse(bytes));
        if (r instanceof SafeTensors) for (const n of r.names()) onlyEarshotErrors(() => r.getF32(n));
      }),
      { numRuns: RUNS },
    );
  });

  it('answers any corruption of a valid file with a file or an EarshotError', () => {
    fc.assert(
      fc.property(fileArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), fc.nat(), (tensors, edits, cut) => {
        const bytes = writeSafetensors(tensors).slice();
        for (const [at, value] of edits) bytes[at % bytes.length] = value;
        const truncated = bytes.subarray(0, bytes.length - (cut % 16));
        const r = onlyEarshotErrors(() => SafeTensors.parse(truncated));
        if (r instanceof SafeTensors) for (const n of r.names()) onlyEarshotErrors(() => r.getF32(n));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('WAV reader', () => {
  const formats: WavSampleFormat[] = ['pcm16', 'pcm24', 'pcm32', 'float32'];
  const step: Record<WavSampleFormat, number> = { pcm16: 2 ** -15, pcm24: 2 ** -23, pcm32: 2 ** -31, float32: 0 };

  it('round-trips any clip in any format, rate and channel count', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 2 }),
        fc.integer({ min: 1, max: 400 }),
        fc.constantFrom(8000, 16000, 22050, 44100, 48000),
        fc.constantFrom(...formats),
        fc.integer(),
        (channelCount, length, rate, format, seed) => {
          let s = seed;
          const next = () => ((s = (Math.imul(s, 1103515245) + 12345) | 0) >>> 0) / 2 ** 32;
          const channels = Array.from({ length: channelCount }, () => Float32Array.from({ length }, () => next() * 1.8 - 0.9));
          const decoded = decodeWav(encodeWav(channels, rate, format));
          expect(decoded.sampleRate).toBe(rate);
          expect(decoded.channels).toHaveLength(channelCount);
          decoded.channels.forEach((ch, c) => ch.forEach((v, i) => expect(Math.abs(v - channels[c][i])).toBeLessThanOrEqual(step[format] + 1e-7)));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('answers any byte string, or a damaged WAV, with samples or an EarshotError', () => {
    const wav = encodeWav([Float32Array.from({ length: 64 }, (_, i) => Math.sin(i / 5))], 16000);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }), fc.nat(), (noise, edits, cut) => {
        for (const bytes of [noise, damaged(wav, edits, cut)]) {
          const r = onlyEarshotErrors(() => decodeWav(bytes));
          if (!(r instanceof EarshotError)) for (const ch of r.channels) for (const v of ch) expect(Number.isFinite(v)).toBe(true);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

function damaged(bytes: Uint8Array, edits: [number, number][], cut: number): Uint8Array {
  const out = bytes.slice();
  for (const [at, value] of edits) out[at % out.length] = value;
  return out.subarray(0, out.length - (cut % 40));
}

describe('hook-name parser', () => {
  const depth = { encoderLayers: 3, decoderLayers: 2 };

  it('parses every real hook name and rebuilds it from the parts', () => {
    for (const name of hookNames(depth)) {
      const p = parseHookName(name, depth);
      expect(p.block === null ? p.point : `${p.stack}.blocks.${p.block}.${p.point}`).toBe(name);
    }
  });

  it('answers any string, hook-like or not, with a parse or an EarshotError', () => {
    const hookish = fc.tuple(fc.constantFrom('encoder', 'decoder', 'x', '__proto__'), fc.oneof(fc.nat(12).map(String), fc.constantFrom('*', '-1', '01', '1e3', '')), fc.constantFrom('hook_resid_pre', 'attn.hook_q', 'cross_attn.hook_k', 'mlp.hook_post', 'constructor', 'hook_logits')).map(([s, b, p]) => `${s}.blocks.${b}.${p}`);
    fc.assert(
      fc.property(fc.oneof(fc.string({ maxLength: 60 }), hookish), (name) => {
        const r = onlyEarshotErrors(() => parseHookName(name, depth));
        if (!(r instanceof EarshotError)) expect(hookNames(depth)).toContain(name);
        const expanded = onlyEarshotErrors(() => expandHookPatterns([name], depth));
        if (Array.isArray(expanded)) for (const n of expanded) expect(hookNames(depth)).toContain(n);
      }),
      { numRuns: RUNS * 3 },
    );
  });
});
