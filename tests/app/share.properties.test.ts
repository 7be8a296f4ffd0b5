/**
 * Property-based tests (fast-check) of the preset codec behind share links (app/share.ts):
 * any valid preset survives encode → decode unchanged, whatever its labels hold (Unicode,
 * lone surrogates, markup, script); and whatever arrives in a fragment (arbitrary text,
 * damaged links, hostile JSON that deflates correctly) the answer is null, a preset that
 * passes the schema and carries no prototype-polluting keys, or a ShareError with a one-line
 * message — never another exception. Run counts are fixed; seeds are printed on failure.
 */
import fc from 'fast-check';
import { deflateSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { COMPONENTS, type Settings } from '../../app/experiment.ts';
import { PAIR_PRESETS } from '../../app/presets.ts';
import { PresetSchema, ShareError, decodeFragment, encodePreset, type ClipRef, type Preset } from '../../app/share.ts';

const RUNS = { roundTrip: 500, strings: 2000, damaged: 1000, hostileJson: 1000 };
const FORBIDDEN = ['__proto__', 'constructor', 'prototype'];

// ───────────────────────────── valid presets ─────────────────────────────

const hostileText = fc.constantFrom(
  '<script>window.__pwned=1</script>',
  '<img src=x onerror=alert(1)>',
  '"><svg onload=alert(1)>',
  '__proto__',
  'constructor',
  '{"v":2}',
  '\u2028\u2029',
  '\u0000',
  '\ud800', // a lone surrogate
  '🎙️ bat/pat',
);
/** Labels: any UTF-16 (lone surrogates too), full Unicode, or markup, within the schema's 120 units. */
const labelArb = fc
  .oneof(
    fc.string({ maxLength: 120, unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)) }),
    fc.string({ maxLength: 60, unit: 'grapheme' }),
    fc.array(fc.oneof(hostileText, fc.string({ maxLength: 8 })), { maxLength: 6 }).map((parts) => parts.join('')),
  )
  .filter((s) => s.length <= 120);

const pcmArb = fc.array(fc.integer({ min: -32768, max: 32767 }), { maxLength: 400 }).map((xs) => Buffer.from(Int16Array.from(xs).buffer).toString('base64'));
const pairId = fc.constantFrom(...PAIR_PRESETS.map((p) => p.id));
const presetClip = fc.record({ kind: fc.constant('preset' as const), id: pairId, which: fc.constantFrom('clean' as const, 'corrupt' as const) });
const pcmClip = fc.record({ kind: fc.constant('pcm16' as const), rate: fc.constant(16000 as const), label: labelArb, data: pcmArb });
const noiseClip = fc.record({ kind: fc.constant('white-noise' as const), seed: fc.integer({ min: 0, max: 2 ** 31 }) });

const repoPart = fc.stringMatching(/^[\w.-]{1,30}$/);
const modelArb = fc.oneof(
  fc.constant({ kind: 'demo' as const }),
  fc.record({
    kind: fc.constant('hub' as const),
    repo: fc.tuple(fc.stringMatching(/^[A-Za-z0-9][\w.-]{0,30}$/), repoPart).map(([owner, name]) => `${owner}/${name}`),
    revision: fc.stringMatching(/^[\w.-]{1,64}$/),
  }),
);

const tokenId = fc.integer({ min: 0, max: 1_000_000 });
const layers = fc.oneof(fc.constant('all' as const), fc.array(fc.integer({ min: 0, max: 63 }), { maxLength: 64 }));
const settingsArb: fc.Arbitrary<Settings> = fc.record({
  direction: fc.constantFrom('denoise' as const, 'noise' as const),
  components: fc.array(fc.constantFrom(...COMPONENTS), { minLength: 1, maxLength: COMPONENTS.length }),
  encoderLayers: layers,
  decoderLayers: layers,
  binMs: fc.integer({ min: 20, max: 30_000 }),
  heads: fc.constantFrom('all' as const, 'each' as const),
  corruption: fc.constantFrom('pair' as const, 'white-noise' as const, 'noise' as const, 'zero' as const, 'mean' as const),
  sigma: fc.double({ min: Number.MIN_VALUE, max: 100, noNaN: true }),
  metric: fc.constantFrom('logit_diff' as const, 'logprob' as const, 'prob' as const, 'kl' as const),
  attribution: fc.boolean(),
});

const presetArb: fc.Arbitrary<Preset> = fc.record({
  v: fc.constant(1 as const),
  model: modelArb,
  clips: fc.record({ clean: fc.oneof(presetClip, pcmClip) as fc.Arbitrary<ClipRef>, corrupt: fc.oneof(presetClip, pcmClip, noiseClip) as fc.Arbitrary<ClipRef> }),
  choice: fc.option(fc.record({ prefix: fc.array(tokenId, { minLength: 1, maxLength: 40 }), target: tokenId, foil: tokenId }), { nil: null }),
  settings: settingsArb,
});

// ───────────────────────────── the property every decode must hold ─────────────────────────────

function ownKeysDeep(value: unknown, found: string[] = []): string[] {
  if (typeof value === 'object' && value !== null) {
    for (const key of Reflect.ownKeys(value)) {
      found.push(String(key));
      ownKeysDeep((value as Record<PropertyKey, unknown>)[key], found);
    }
  }
  return found;
}

/** null, a schema-valid preset without polluting keys, or a ShareError with a one-line message. */
function decodesSafely(fragment: string): Preset | null | ShareError {
  let result: Preset | null;
  try {
    result = decodeFragment(fragment);
  } catch (e) {
    expect(e, String(e)).toBeInstanceOf(ShareError);
    const message = (e as ShareError).message;
    expect(message.length).toBeGreaterThan(10);
    expect(message).not.toMatch(/[\n\r]/);
    return e as ShareError;
  }
  if (result !== null) {
    expect(PresetSchema.safeParse(result).success).toBe(true);
    expect(ownKeysDeep(result).filter((k) => FORBIDDEN.includes(k))).toEqual([]);
  }
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  return result;
}

const b64url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64url');
const fragmentOfJson = (json: string) => `#p=${b64url(deflateSync(new TextEncoder().encode(json)))}`;

// ───────────────────────────── properties ─────────────────────────────

describe('share codec properties', () => {
  it(`round-trips any valid preset, labels with any text included (${RUNS.roundTrip} runs)`, () => {
    fc.assert(
      fc.property(presetArb, (preset) => {
        // Only presets the schema accepts are "valid" (e.g. white noise cannot be the clean clip).
        fc.pre(PresetSchema.safeParse(preset).success);
        const fragment = encodePreset(preset);
        expect(fragment).toMatch(/^[A-Za-z0-9_-]+$/);
        expect(decodeFragment(`#p=${fragment}`)).toEqual(preset);
      }),
      { numRuns: RUNS.roundTrip },
    );
  });

  it(`answers any fragment text with null, a valid preset or a ShareError (${RUNS.strings} runs)`, () => {
    const text = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 200 }).map((s) => `#p=${s}`),
      fc.stringMatching(/^[A-Za-z0-9_-]{0,300}$/).map((s) => `p=${s}`),
      fc.uint8Array({ maxLength: 300 }).map((b) => `#p=${b64url(b)}`),
    );
    fc.assert(fc.property(text, (s) => void decodesSafely(s)), { numRuns: RUNS.strings });
  });

  it(`answers any damage to a valid link with a preset or a ShareError (${RUNS.damaged} runs)`, () => {
    const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom('replace', 'delete', 'insert'), char: fc.constantFrom(...'AZaz09-_+/=%# '.split('')) });
    fc.assert(
      fc.property(presetArb, fc.array(edit, { minLength: 1, maxLength: 6 }), fc.nat(), (preset, edits, cut) => {
        let text = encodePreset(preset);
        for (const e of edits) {
          const i = e.at % (text.length + 1);
          text = e.kind === 'replace' ? text.slice(0, i) + e.char + text.slice(i + 1) : e.kind === 'delete' ? text.slice(0, i) + text.slice(i + 1) : text.slice(0, i) + e.char + text.slice(i);
        }
        decodesSafely(`#p=${text.slice(0, text.length - (cut % 8))}`);
      }),
      { numRuns: RUNS.damaged },
    );
  });

  it(`answers well-deflated hostile JSON (wrong types, versions, polluting keys) with a preset or a ShareError (${RUNS.hostileJson} runs)`, () => {
    const keys = fc.constantFrom(...FORBIDDEN, 'v', 'model', 'clips', 'clean', 'corrupt', 'kind', 'label', 'settings', 'choice', 'polluted');
    const hostileValue = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, fc.jsonValue({ maxDepth: 2 }), hostileText, tie('object')),
      object: fc.dictionary(keys, tie('value'), { maxKeys: 4 }),
    })).value;
    // Graft a hostile value into a valid preset's JSON text at some object, under some key.
    const grafted = fc.tuple(presetArb, keys, hostileValue, fc.nat()).map(([preset, key, value, at]) => {
      const json = JSON.stringify(preset);
      const opens = [...json.matchAll(/\{/g)].map((m) => m.index);
      const i = opens[at % opens.length] + 1;
      const rest = json.slice(i);
      return `${json.slice(0, i)}${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'}${rest.startsWith('}') ? '' : ','}${rest}`;
    });
    fc.assert(
      fc.property(fc.oneof(grafted, hostileValue.map((v) => JSON.stringify(v) ?? 'null')), (json) => {
        const r = decodesSafely(fragmentOfJson(json));
        // A polluting key anywhere in what JSON.parse builds must be refused, not quietly dropped.
        // (One inside a value that a later duplicate key overwrites never exists, so it cannot matter.)
        // (A graft inside a string can make invalid JSON: that is a ShareError too, checked above.)
        let parsed: unknown;
        try {
          parsed = JSON.parse(json);
        } catch {
          expect(r).toBeInstanceOf(ShareError);
          return;
        }
        // Refused by name, before the schema sees it (the strict schema would refuse it too).
        if (ownKeysDeep(parsed).some((k) => FORBIDDEN.includes(k))) expect(String(r)).toMatch(/contains the key "(__proto__|constructor|prototype)", which Earshot refuses/);
      }),
      { numRuns: RUNS.hostileJson },
    );
  });
});
