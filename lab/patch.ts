/**
 * Patch setters: turn PatchSpecs (data) into hook replacement functions that write
 * chosen positions/heads of a source into a batch of patched variants. One generic
 * rule for every hook: variant row b takes the source at its chosen positions × heads
 * and keeps its own value elsewhere. It runs as models/ops.ts's patchScatter (our WGSL
 * kernel on WebGPU, an exact select elsewhere); a row that patches one hook twice from the
 * same source (a union of position × head blocks) uses a 0/1 mask M instead:
 * value + M ⊙ (source − value).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from '../models/config.ts';
import type { HookFn } from '../models/hook-session.ts';
import { parseHookName } from '../models/hooks.ts';
import { EarshotError } from '../models/errors.ts';
import { patchScatter } from '../models/ops.ts';
import type { PatchSpec, RunName, Source } from './spec.ts';

/** Which axes of a hook's value (batch axis excluded) are positions and heads. */
export interface HookGeometry {
  posAxis: number;
  headAxis: number | null;
}

export function hookGeometry(hook: string): HookGeometry {
  const { point } = parseHookName(hook);
  if (point === 'encoder.hook_input') return { posAxis: 1, headAxis: null }; // [n_mels, frames]
  if (point.endsWith('hook_pattern')) return { posAxis: 1, headAxis: 0 }; // [head, q_pos, k_pos]
  if (/hook_[qkvz]$/.test(point)) return { posAxis: 0, headAxis: 1 }; // [pos, head, d_head]
  return { posAxis: 0, headAxis: null }; // [pos, d]
}

/** Length of a hook's position axis and head count, for planning sweeps. */
export function hookExtent(hook: string, c: WhisperConfig, prefixLength: number): { positions: number; heads: number | null } {
  const parsed = parseHookName(hook, c);
  const g = hookGeometry(hook);
  const heads = g.headAxis === null ? null : parsed.stack === 'encoder' ? c.encoderHeads : c.decoderHeads;
  let positions: number;
  if (parsed.point === 'encoder.hook_input') positions = 2 * c.maxSourcePositions;
  else if (parsed.stack === 'encoder') positions = c.maxSourcePositions;
  else if (parsed.point === 'cross_attn.hook_k' || parsed.point === 'cross_attn.hook_v') positions = c.maxSourcePositions;
  else positions = prefixLength;
  return { positions, heads };
}

/** Base-run values a source needs: the run's own cache, and the other run's. */
export interface SourceValues {
  /** The named run's cached value of a hook, [1, ...]. */
  valueOf(run: RunName, hook: string): tf.Tensor;
  /** The run being executed (whose own value noise and mean sources start from). */
  base: RunName;
}

/** Hooks whose cached values a set of patches needs (before any patched pass runs). */
export function neededValues(patches: readonly PatchSpec[], base: RunName): Map<RunName, Set<string>> {
  const need = new Map<RunName, Set<string>>([['clean', new Set()], ['corrupt', new Set()]]);
  for (const p of patches) {
    const k = p.source.kind;
    if (k === 'clean' || k === 'corrupt') need.get(k)!.add(p.hook);
    else if (k === 'noise' || k === 'mean') need.get(base)!.add(p.hook);
  }
  return need;
}

/** The value a source puts in, broadcastable against the hook's [B, ...] value. */
export function sourceTensor(source: Source, hook: string, values: SourceValues): tf.Tensor | null {
  switch (source.kind) {
    case 'clean':
    case 'corrupt':
      return values.valueOf(source.kind, hook);
    case 'zero':
      return null;
    case 'mean': {
      const own = values.valueOf(values.base, hook);
      return tf.mean(own, 1 + hookGeometry(hook).posAxis, true);
    }
    case 'noise': {
      const own = values.valueOf(values.base, hook);
      const std = tf.sqrt(tf.moments(own).variance);
      // Seeded on the CPU so every backend patches in exactly the same noise.
      const noise = tf.tensor(gaussian(own.size, source.seed), own.shape);
      return tf.add(own, tf.mul(noise, tf.mul(std, source.scale)));
    }
    default: {
      const never: never = source;
      throw new Error(`unknown source ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Replacement functions for one batch: variant b (row b of the batch) patches
 * `variants[b]`'s PatchSpecs. Rows that do not patch a hook pass its value through.
 */
export function buildReplacements(variants: readonly (readonly PatchSpec[])[], values: SourceValues): Map<string, HookFn> {
  const byHook = new Map<string, { row: number; spec: PatchSpec }[]>();
  variants.forEach((patches, row) => {
    for (const spec of patches) {
      const list = byHook.get(spec.hook) ?? [];
      list.push({ row, spec });
      byHook.set(spec.hook, list);
    }
  });
  const fns = new Map<string, HookFn>();
  for (const [hook, entries] of byHook) {
    fns.set(hook, (value) => {
      const shape = value.shape.slice(1);
      // One mask per distinct source, so a batch may mix sources.
      const bySource = new Map<string, { source: Source; rows: { row: number; spec: PatchSpec }[] }>();
      for (const e of entries) {
        const key = JSON.stringify(e.spec.source);
        const group = bySource.get(key) ?? { source: e.spec.source, rows: [] };
        group.rows.push(e);
        bySource.set(key, group);
      }
      let out: tf.Tensor = value;
      for (const { source, rows } of bySource.values()) {
        for (const { spec } of rows) checkSpec(hook, shape, spec);
        const src = sourceTensor(source, hook, values);
        if (new Set(rows.map((r) => r.row)).size === rows.length) {
          // One block per row: an exact scatter. A mean source has a size-1 position axis.
          const full = src && src.shape.some((n, i) => i > 0 && n !== shape[i - 1]) ? tf.broadcastTo(src, [src.shape[0], ...shape]) : src;
          const scatter = rows.map(({ row, spec }) => ({ row, positions: spec.positions, heads: spec.heads }));
          out = patchScatter(out, full, variants.length, scatter, hookGeometry(hook));
          continue;
        }
        const mask = buildMask(hook, shape, variants.length, rows);
        // value + M ⊙ (src − value); zero ablation is value ⊙ (1 − M).
        out = src === null ? tf.mul(out, tf.sub(1, mask)) : tf.add(out, tf.mul(mask, tf.sub(src, out)));
      }
      return out;
    });
  }
  return fns;
}

/** 0/1 mask [B, ...shape with non-position/head axes of size 1]. */
function buildMask(hook: string, shape: readonly number[], batch: number, rows: { row: number; spec: PatchSpec }[]): tf.Tensor {
  const g = hookGeometry(hook);
  const maskShape = shape.map((n, axis) => (axis === g.posAxis || axis === g.headAxis ? n : 1));
  const nPos = shape[g.posAxis];
  const nHead = g.headAxis === null ? 1 : shape[g.headAxis];
  const perRow = maskShape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(batch * perRow);
  // Strides of the position and head axes inside one row of the mask.
  const stride = (axis: number) => maskShape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const posStride = stride(g.posAxis);
  const headStride = g.headAxis === null ? 0 : stride(g.headAxis);
  for (const { row, spec } of rows) {
    for (const p of spec.positions ?? range(nPos)) {
      for (const h of spec.heads ?? range(nHead)) data[row * perRow + p * posStride + h * headStride] = 1;
    }
  }
  return tf.tensor(data, [batch, ...maskShape]);
}

/** Refuses positions or heads a hook does not have (one sentence, before any tensor work). */
function checkSpec(hook: string, shape: readonly number[], spec: PatchSpec): void {
  const g = hookGeometry(hook);
  if (spec.heads !== null && g.headAxis === null) {
    throw new EarshotError(`${hook} has no head axis; patch heads on hook_q, hook_k, hook_v, hook_z or hook_pattern.`, 'bad-patch');
  }
  const nPos = shape[g.posAxis];
  const nHead = g.headAxis === null ? 1 : shape[g.headAxis];
  const p = spec.positions?.find((x) => x >= nPos);
  if (p !== undefined) throw new EarshotError(`Position ${p} is outside ${hook}, which has ${nPos} positions.`, 'bad-patch');
  const h = spec.heads?.find((x) => x >= nHead);
  if (h !== undefined) throw new EarshotError(`Head ${h} is outside ${hook}, which has ${nHead} heads.`, 'bad-patch');
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Standard normal samples from a seeded generator (mulberry32 + Box–Muller). */
export function gaussian(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = 1 - next();
    const v = next();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}
