/**
 * Presets and share links (DESIGN.md §7). A preset is versioned JSON: the model, both clips
 * (a built-in pair's id, white noise, or small embedded PCM16 audio), the prefix/target/foil
 * and the experiment settings. A share link carries it in the URL fragment as
 * `#p=` + base64url(deflate(JSON)), so nothing reaches a server.
 *
 * Everything read from a link is hostile until proven otherwise: the fragment's size, its
 * alphabet, the inflated size (deflate bombs), JSON keys that could pollute prototypes, and
 * the schema (zod, strict) are all checked before any of it is used. No DOM here: the tests
 * import this file in Node.
 */
import { Inflate, deflateSync } from 'fflate';
import { z } from '../models/zod.ts';
import { CLIP_RATE, type LabClip } from './clip.ts';
import { SettingsSchema, type Settings } from './experiment.ts';
import { pairPreset } from './presets.ts';

export const PRESET_VERSION = 1;
/** Longest fragment accepted (characters after `#p=`). */
export const MAX_FRAGMENT = 1_500_000;
/** Largest inflated JSON accepted (bytes). */
export const MAX_JSON = 3_000_000;
/** Longest recording embedded in a link, per clip. */
export const MAX_EMBED_SECONDS = 12;

export class ShareError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ShareError';
  }
}

const base64Text = z.string().max(4 * Math.ceil((MAX_EMBED_SECONDS * CLIP_RATE * 2) / 3) + 4).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'not base64');
const label = z.string().max(120);

const ClipRefSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('preset'), id: z.string().max(64).regex(/^[a-z0-9-]+$/), which: z.enum(['clean', 'corrupt']) }).strict(),
  z.object({ kind: z.literal('white-noise'), seed: z.number().int().min(0).max(2 ** 31) }).strict(),
  z.object({ kind: z.literal('pcm16'), rate: z.literal(CLIP_RATE), label, data: base64Text }).strict(),
]);

const ModelRefSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('demo') }).strict(),
  z
    .object({
      kind: z.literal('hub'),
      repo: z.string().max(96).regex(/^[A-Za-z0-9][\w.-]*\/[\w.-]+$/, 'not a Hugging Face repo id'),
      revision: z.string().min(1).max(64).regex(/^[\w.-]+$/, 'not a revision'),
    })
    .strict(),
]);

const tokenId = z.number().int().min(0).max(1_000_000);

export const PresetSchema = z
  .object({
    v: z.literal(PRESET_VERSION),
    model: ModelRefSchema,
    clips: z.object({ clean: ClipRefSchema, corrupt: ClipRefSchema }).strict(),
    choice: z.object({ prefix: z.array(tokenId).min(1).max(448), target: tokenId, foil: tokenId }).strict().nullable(),
    settings: SettingsSchema,
  })
  .strict()
  .superRefine((p, ctx) => {
    if (p.clips.clean.kind === 'white-noise') ctx.addIssue({ code: 'custom', message: 'white noise can only be the corrupted clip', path: ['clips', 'clean'] });
    for (const which of ['clean', 'corrupt'] as const) {
      const c = p.clips[which];
      if (c.kind === 'preset' && !pairPreset(c.id)) ctx.addIssue({ code: 'custom', message: `there is no built-in pair "${c.id}"`, path: ['clips', which] });
    }
  });

export type Preset = z.infer<typeof PresetSchema>;
export type ClipRef = Preset['clips']['clean'];
export type ModelRef = Preset['model'];

// ───────────────────────────── encoding ─────────────────────────────

function bytesToBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToBytes(text: string): Uint8Array {
  const s = atob(text);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

const toUrlSafe = (b64: string) => b64.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');

function pcmToBase64(pcm: Int16Array): string {
  const bytes = new Uint8Array(pcm.length * 2);
  const v = new DataView(bytes.buffer);
  pcm.forEach((x, i) => v.setInt16(2 * i, x, true));
  return bytesToBase64(bytes);
}

export function pcmFromBase64(data: string): Int16Array {
  const bytes = base64ToBytes(data);
  if (bytes.length % 2 !== 0) throw new ShareError('The embedded audio has an odd number of bytes; the link is damaged.');
  const v = new DataView(bytes.buffer);
  const out = new Int16Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = v.getInt16(2 * i, true);
  return out;
}

/** How a clip travels in a preset; recordings and files are embedded (up to MAX_EMBED_SECONDS). */
export function clipRef(clip: LabClip): ClipRef {
  const o = clip.origin;
  if (o.kind === 'preset') return { kind: 'preset', id: o.id, which: o.which };
  if (o.kind === 'white-noise') return { kind: 'white-noise', seed: o.seed };
  if (clip.pcm.length > MAX_EMBED_SECONDS * CLIP_RATE) {
    throw new ShareError(`"${clip.label}" is longer than ${MAX_EMBED_SECONDS} s, too long to embed in a link; trim it first.`);
  }
  return { kind: 'pcm16', rate: CLIP_RATE, label: clip.label.slice(0, 120), data: pcmToBase64(clip.pcm) };
}

export function encodePreset(preset: Preset): string {
  const json = new TextEncoder().encode(JSON.stringify(preset));
  return toUrlSafe(bytesToBase64(deflateSync(json, { level: 9 })));
}

/** The full share URL for a page URL (any fragment replaced). */
export function shareUrl(pageUrl: string, preset: Preset): string {
  const url = new URL(pageUrl);
  url.hash = `p=${encodePreset(preset)}`;
  return url.href;
}

// ───────────────────────────── decoding ─────────────────────────────

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** Inflates raw deflate data, refusing to produce more than `limit` bytes. */
function inflateCapped(data: Uint8Array, limit: number): Uint8Array {
  const chunks: Uint8Array[] = [];
  let total = 0;
  let finished = false;
  const inflater = new Inflate((chunk, final) => {
    total += chunk.length;
    if (total > limit) throw new ShareError(`The link inflates to more than ${Math.round(limit / 1e6)} MB; it is not an Earshot preset.`);
    chunks.push(chunk);
    if (final) finished = true;
  });
  const step = 1024;
  try {
    for (let i = 0; i < data.length; i += step) inflater.push(data.subarray(i, i + step), i + step >= data.length);
  } catch (e) {
    if (e instanceof ShareError) throw e;
    throw new ShareError('The link is damaged: its data does not decompress. Copy the whole link again.');
  }
  if (!finished) throw new ShareError('The link is cut short: its data ends early. Copy the whole link again.');
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/**
 * The preset in a URL fragment ("#p=…" or "p=…"), validated. Throws a ShareError whose
 * message says what is wrong; returns null when the fragment holds no preset at all.
 */
export function decodeFragment(fragment: string): Preset | null {
  const hash = fragment.startsWith('#') ? fragment.slice(1) : fragment;
  if (!hash.startsWith('p=')) return null;
  const text = hash.slice(2);
  if (text.length === 0) throw new ShareError('The link has an empty preset (#p=).');
  if (text.length > MAX_FRAGMENT) throw new ShareError(`The link's preset is ${text.length.toLocaleString('en')} characters long, more than the ${MAX_FRAGMENT.toLocaleString('en')} Earshot accepts.`);
  if (!/^[A-Za-z0-9_-]+$/.test(text)) throw new ShareError('The link is damaged: its preset is not base64url text. Copy the whole link again.');
  let bytes: Uint8Array;
  try {
    const b64 = text.replace(/-/g, '+').replace(/_/g, '/');
    bytes = base64ToBytes(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
  } catch {
    throw new ShareError('The link is damaged: its preset is not valid base64url. Copy the whole link again.');
  }
  const json = inflateCapped(bytes, MAX_JSON);
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json), (key, value) => {
      if (FORBIDDEN_KEYS.has(key)) throw new ShareError(`The link's preset contains the key "${key}", which Earshot refuses.`);
      return value;
    });
  } catch (e) {
    if (e instanceof ShareError) throw e;
    throw new ShareError('The link is damaged: its preset is not valid JSON.');
  }
  return validatePreset(raw);
}

/** Checks a parsed preset (from a link or a file) against the schema. */
export function validatePreset(raw: unknown): Preset {
  if (typeof raw === 'object' && raw !== null && 'v' in raw && (raw as { v: unknown }).v !== PRESET_VERSION) {
    const v = (raw as { v: unknown }).v;
    throw new ShareError(`The link is an Earshot preset of version ${typeof v === 'number' ? v : '?'}; this Earshot reads version ${PRESET_VERSION}. Open it with a matching Earshot.`);
  }
  const parsed = PresetSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue?.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new ShareError(`The link's preset is not valid${where}: ${issue?.message ?? 'unknown problem'}.`);
  }
  return parsed.data;
}

export type { Settings };
