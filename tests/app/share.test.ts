/**
 * Share links (app/share.ts): a preset survives the round trip bit for bit, and every
 * kind of hostile fragment is refused with a message that says what is wrong.
 */
import { deflateSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { DEFAULT_SETTINGS } from '../../app/experiment.ts';
import { MAX_FRAGMENT, clipRef, decodeFragment, encodePreset, pcmFromBase64, shareUrl, type Preset } from '../../app/share.ts';

const toB64Url = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64').replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const fragmentOf = (json: string) => `#p=${toB64Url(deflateSync(new TextEncoder().encode(json)))}`;

const pcm = Int16Array.from({ length: 16000 }, (_, i) => Math.round(12000 * Math.sin(i / 7) + (i % 13) * 50 - 32768 * (i === 5 ? 1 : 0)));

function preset(): Preset {
  return {
    v: 1,
    model: { kind: 'hub', repo: 'openai/whisper-tiny', revision: 'main' },
    clips: { clean: clipRef({ origin: { kind: 'recording' }, label: 'my recording', pcm }), corrupt: { kind: 'preset', id: 'bat-pat', which: 'corrupt' } },
    choice: { prefix: [50258, 50259, 50359, 50363], target: 7, foil: 9 },
    settings: { ...DEFAULT_SETTINGS, binMs: 40, components: ['resid_pre', 'cross_attn_out'] },
  };
}

describe('share links', () => {
  it('round-trip a preset, embedded PCM16 bit for bit', () => {
    const p = preset();
    const url = shareUrl('https://example.org/earshot/?backend=wasm#old', p);
    expect(url.startsWith('https://example.org/earshot/?backend=wasm#p=')).toBe(true);
    const back = decodeFragment(new URL(url).hash)!;
    expect(back).toEqual(p);
    expect(back.clips.clean.kind).toBe('pcm16');
    if (back.clips.clean.kind === 'pcm16') expect(pcmFromBase64(back.clips.clean.data)).toEqual(pcm);
    // A 1 s recording stays well inside the limit.
    expect(encodePreset(p).length).toBeLessThan(60_000);
  });

  it('ignores fragments without a preset', () => {
    expect(decodeFragment('')).toBeNull();
    expect(decodeFragment('#section-2')).toBeNull();
  });

  it('refuses an oversized fragment before decoding it', () => {
    expect(() => decodeFragment(`#p=${'A'.repeat(MAX_FRAGMENT + 1)}`)).toThrow(/more than the .* Earshot accepts/);
  });

  it('refuses text that is not base64url', () => {
    expect(() => decodeFragment('#p=abc<script>alert(1)</script>')).toThrow(/not base64url/);
    expect(() => decodeFragment('#p=abc def')).toThrow(/not base64url/);
  });

  it('refuses data that does not inflate, or inflates only partly', () => {
    expect(() => decodeFragment('#p=AAAAAAAAAAAAAAAA')).toThrow(/damaged|cut short/);
    const full = encodePreset(preset());
    expect(() => decodeFragment(`#p=${full.slice(0, full.length / 2)}`)).toThrow(/damaged|cut short/);
  });

  it('refuses a deflate bomb once the inflated size passes the cap', () => {
    const bomb = deflateSync(new Uint8Array(50_000_000).fill(32), { level: 9 }); // 50 MB of spaces
    expect(bomb.length).toBeLessThan(100_000);
    expect(() => decodeFragment(`#p=${toB64Url(bomb)}`)).toThrow(/inflates to more than/);
  });

  it('refuses another version with a message naming both', () => {
    expect(() => decodeFragment(fragmentOf(JSON.stringify({ ...preset(), v: 2 })))).toThrow(/version 2; this Earshot reads version 1/);
  });

  it('refuses prototype-pollution keys anywhere', () => {
    const json = JSON.stringify(preset()).replace('"settings":{', '"settings":{"__proto__":{"polluted":true},');
    expect(() => decodeFragment(fragmentOf(json))).toThrow(/__proto__/);
    const ctor = JSON.stringify(preset()).replace('"model":{', '"model":{"constructor":{"prototype":{"x":1}},');
    expect(() => decodeFragment(fragmentOf(ctor))).toThrow(/contains the key "(constructor|prototype)"/);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('refuses unknown keys, bad ids and impossible combinations', () => {
    const bad = (mutate: (p: Record<string, unknown>) => void) => {
      const p = JSON.parse(JSON.stringify(preset())) as Record<string, unknown>;
      mutate(p);
      return () => decodeFragment(fragmentOf(JSON.stringify(p)));
    };
    expect(bad((p) => (p.extra = 1))).toThrow(/not valid/);
    expect(bad((p) => ((p.model as Record<string, unknown>).repo = '<img src=x onerror=alert(1)>'))).toThrow(/not a Hugging Face repo id/);
    expect(bad((p) => ((p.clips as Record<string, unknown>).corrupt = { kind: 'preset', id: 'no-such-pair', which: 'corrupt' }))).toThrow(/no built-in pair/);
    expect(bad((p) => ((p.clips as Record<string, unknown>).clean = { kind: 'white-noise', seed: 0 }))).toThrow(/white noise can only be the corrupted clip/);
    expect(bad((p) => ((p.settings as Record<string, unknown>).binMs = 1e12))).toThrow(/settings\.binMs/);
    expect(bad((p) => ((p.choice as Record<string, unknown>).target = -1))).toThrow(/choice\.target/);
  });

  it('keeps script-like text as plain text (the page renders it as text, never HTML)', () => {
    const p = preset();
    if (p.clips.clean.kind === 'pcm16') p.clips.clean.label = '<script>alert("x")</script>';
    const back = decodeFragment(`#p=${encodePreset(p)}`)!;
    expect(back.clips.clean.kind === 'pcm16' && back.clips.clean.label).toBe('<script>alert("x")</script>');
  });
});
