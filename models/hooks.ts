/**
 * Hook points: the one table that names every intermediate value of the model
 * (DESIGN.md §3, TransformerLens grammar). The model, the lab, the CLI and the
 * tests all derive names from here; `hooks.test.ts` pins the ordered list.
 */
import { EarshotError } from './errors.ts';

/** Hook points inside one encoder block, in the order they are computed. */
export const ENCODER_BLOCK_POINTS = [
  'hook_resid_pre',
  'attn.hook_q',
  'attn.hook_k',
  'attn.hook_v',
  'attn.hook_pattern',
  'attn.hook_z',
  'hook_attn_out',
  'hook_resid_mid',
  'mlp.hook_pre',
  'mlp.hook_post',
  'hook_mlp_out',
  'hook_resid_post',
] as const;

/** Hook points inside one decoder block, in the order they are computed. */
export const DECODER_BLOCK_POINTS = [
  'hook_resid_pre',
  'self_attn.hook_q',
  'self_attn.hook_k',
  'self_attn.hook_v',
  'self_attn.hook_pattern',
  'self_attn.hook_z',
  'hook_self_attn_out',
  'hook_resid_mid',
  'cross_attn.hook_q',
  'cross_attn.hook_k',
  'cross_attn.hook_v',
  'cross_attn.hook_pattern',
  'cross_attn.hook_z',
  'hook_cross_attn_out',
  'hook_resid_mid_cross',
  'mlp.hook_pre',
  'mlp.hook_post',
  'hook_mlp_out',
  'hook_resid_post',
] as const;

export type EncoderBlockPoint = (typeof ENCODER_BLOCK_POINTS)[number];
export type DecoderBlockPoint = (typeof DECODER_BLOCK_POINTS)[number];

export const ENCODER_TOP_POINTS = ['encoder.hook_input', 'encoder.hook_embed'] as const;
export const ENCODER_END_POINTS = ['encoder.hook_ln_post'] as const;
export const DECODER_TOP_POINTS = ['decoder.hook_embed'] as const;
export const DECODER_END_POINTS = ['decoder.hook_ln_final', 'hook_logits'] as const;

export interface Depth {
  encoderLayers: number;
  decoderLayers: number;
}

export const encoderHook = (block: number, point: EncoderBlockPoint): string =>
  `encoder.blocks.${block}.${point}`;
export const decoderHook = (block: number, point: DecoderBlockPoint): string =>
  `decoder.blocks.${block}.${point}`;

/** Every hook name of a model of this depth, in computation order. */
export function hookNames(depth: Depth): string[] {
  const names: string[] = [...ENCODER_TOP_POINTS];
  for (let i = 0; i < depth.encoderLayers; i++) {
    for (const p of ENCODER_BLOCK_POINTS) names.push(encoderHook(i, p));
  }
  names.push(...ENCODER_END_POINTS, ...DECODER_TOP_POINTS);
  for (let i = 0; i < depth.decoderLayers; i++) {
    for (const p of DECODER_BLOCK_POINTS) names.push(decoderHook(i, p));
  }
  names.push(...DECODER_END_POINTS);
  return names;
}

export interface ParsedHook {
  stack: 'encoder' | 'decoder';
  /** Block index, or null for hooks outside the blocks (embed, ln_post, logits…). */
  block: number | null;
  /** The name within the block (`attn.hook_q`) or the whole name outside blocks. */
  point: string;
  /** Attention sub-module for q/k/v/pattern/z hooks, else null. */
  attention: 'attn' | 'self_attn' | 'cross_attn' | null;
}

const BLOCK_RE = /^(encoder|decoder)\.blocks\.(\d+)\.(.+)$/;

/** Parses a hook name; throws an EarshotError naming valid forms if it is not one. */
export function parseHookName(name: string, depth?: Depth): ParsedHook {
  const m = BLOCK_RE.exec(name);
  if (m) {
    const stack = m[1] as 'encoder' | 'decoder';
    const block = Number(m[2]);
    const point = m[3];
    const points: readonly string[] = stack === 'encoder' ? ENCODER_BLOCK_POINTS : DECODER_BLOCK_POINTS;
    if (!points.includes(point)) {
      throw new EarshotError(
        `Unknown hook point "${point}" in "${name}". ${stack} blocks have: ${points.join(', ')}.`,
        'bad-hook',
      );
    }
    const layers = depth ? (stack === 'encoder' ? depth.encoderLayers : depth.decoderLayers) : Infinity;
    if (block >= layers || String(block) !== m[2]) {
      throw new EarshotError(`Hook "${name}" names ${stack} block ${m[2]}, but the model has ${layers} ${stack} blocks (0–${layers - 1}).`, 'bad-hook');
    }
    const dot = point.indexOf('.');
    const attention = dot > 0 && point.slice(0, dot) !== 'mlp' ? (point.slice(0, dot) as ParsedHook['attention']) : null;
    return { stack, block, point, attention };
  }
  const top: readonly string[] = [...ENCODER_TOP_POINTS, ...ENCODER_END_POINTS];
  if (top.includes(name)) return { stack: 'encoder', block: null, point: name, attention: null };
  const dtop: readonly string[] = [...DECODER_TOP_POINTS, ...DECODER_END_POINTS];
  if (dtop.includes(name)) return { stack: 'decoder', block: null, point: name, attention: null };
  throw new EarshotError(
    `Unknown hook "${name}". Hooks look like "encoder.blocks.0.hook_resid_post" or "decoder.blocks.1.cross_attn.hook_pattern"; run with --list-hooks to see them all.`,
    'bad-hook',
  );
}

/**
 * Expands hook patterns: a `*` in place of a block index matches every block;
 * any other name must be a valid hook. Order follows computation order, no duplicates.
 */
export function expandHookPatterns(patterns: readonly string[], depth: Depth): string[] {
  const all = hookNames(depth);
  const wanted = new Set<string>();
  for (const raw of patterns) {
    const pattern = raw.trim();
    if (pattern === '') continue;
    if (pattern.includes('*')) {
      // Only the block index may be a wildcard: escape everything else literally.
      const re = new RegExp('^' + pattern.split('*').map(escapeRegExp).join('\\d+') + '$');
      const hits = all.filter((n) => re.test(n));
      if (hits.length === 0) {
        throw new EarshotError(`Hook pattern "${pattern}" matches no hook of this model.`, 'bad-hook');
      }
      hits.forEach((n) => wanted.add(n));
    } else {
      parseHookName(pattern, depth);
      wanted.add(pattern);
    }
  }
  return all.filter((n) => wanted.has(n));
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
