/**
 * Experiment settings as the user sets them, and their translation into the lab's
 * SweepSpec (lab/spec.ts). Plain data with a zod schema, so settings persist in IndexedDB
 * and travel in share URLs unchanged.
 */
import { z } from '../models/zod.ts';
import { defaultSource, type Metric, type Source, type SweepSpec } from '../lab/spec.ts';

export const COMPONENTS = ['resid_pre', 'attn_out', 'cross_attn_out', 'mlp_out', 'resid_post', 'attn_z', 'cross_z'] as const;
export type Component = (typeof COMPONENTS)[number];

export const COMPONENT_LABELS: Record<Component, string> = {
  resid_pre: 'residual stream (block input)',
  attn_out: 'self-attention output',
  cross_attn_out: 'cross-attention output (decoder)',
  mlp_out: 'MLP output',
  resid_post: 'residual stream (block output)',
  attn_z: 'self-attention heads (z)',
  cross_z: 'cross-attention heads (z, decoder)',
};

/** Hook point of a component in each stack (null: the stack has no such component). */
const POINTS: Record<Component, { encoder: string | null; decoder: string | null }> = {
  resid_pre: { encoder: 'hook_resid_pre', decoder: 'hook_resid_pre' },
  attn_out: { encoder: 'hook_attn_out', decoder: 'hook_self_attn_out' },
  cross_attn_out: { encoder: null, decoder: 'hook_cross_attn_out' },
  mlp_out: { encoder: 'hook_mlp_out', decoder: 'hook_mlp_out' },
  resid_post: { encoder: 'hook_resid_post', decoder: 'hook_resid_post' },
  attn_z: { encoder: 'attn.hook_z', decoder: 'self_attn.hook_z' },
  cross_z: { encoder: null, decoder: 'cross_attn.hook_z' },
};

export type Corruption = 'pair' | 'white-noise' | 'noise' | 'zero' | 'mean';
export const CORRUPTION_LABELS: Record<Corruption, string> = {
  pair: 'the corrupted clip (minimal pair)',
  'white-noise': 'white-noise audio as the corrupted clip',
  noise: 'Gaussian noise on the activation (σ × its std)',
  zero: 'zero ablation',
  mean: 'mean ablation (over positions)',
};

export const METRIC_LABELS: Record<Metric, string> = {
  logit_diff: 'logit difference (target − foil)',
  logprob: 'log-probability of the target',
  prob: 'probability of the target',
  kl: 'KL divergence to the clean distribution',
};

export interface Settings {
  direction: 'denoise' | 'noise';
  components: Component[];
  /** Encoder / decoder blocks to patch; 'all' follows the model. */
  encoderLayers: number[] | 'all';
  decoderLayers: number[] | 'all';
  /** Width of an encoder time bin in ms (a multiple of 20 ms, one encoder position). */
  binMs: number;
  heads: 'all' | 'each';
  corruption: Corruption;
  /** σ as a multiple of the activation's std, for 'noise'. */
  sigma: number;
  metric: Metric;
  /** Also estimate every patch by attribution patching and verify the top ones. */
  attribution: boolean;
}

export const DEFAULT_SETTINGS: Settings = {
  direction: 'denoise',
  components: ['resid_pre', 'attn_out', 'cross_attn_out', 'mlp_out'],
  encoderLayers: 'all',
  decoderLayers: 'all',
  binMs: 100,
  heads: 'all',
  corruption: 'pair',
  sigma: 3,
  metric: 'logit_diff',
  attribution: true,
};

const layerList = z.union([z.literal('all'), z.array(z.number().int().min(0).max(63)).max(64)]);

export const SettingsSchema = z
  .object({
    direction: z.enum(['denoise', 'noise']),
    components: z.array(z.enum(COMPONENTS)).min(1).max(COMPONENTS.length),
    encoderLayers: layerList,
    decoderLayers: layerList,
    binMs: z.number().int().min(20).max(30_000),
    heads: z.enum(['all', 'each']),
    corruption: z.enum(['pair', 'white-noise', 'noise', 'zero', 'mean']),
    sigma: z.number().finite().positive().max(100),
    metric: z.enum(['logit_diff', 'logprob', 'prob', 'kl']),
    attribution: z.boolean(),
  })
  .strict();

export interface ModelShape {
  encoderLayers: number;
  decoderLayers: number;
}

const layersOf = (chosen: number[] | 'all', n: number) => (chosen === 'all' ? Array.from({ length: n }, (_, i) => i) : chosen.filter((l) => l < n));

/** The hooks the settings patch, in computation order (encoder first). */
export function hooksOf(s: Settings, m: ModelShape): string[] {
  const hooks: string[] = [];
  for (const stack of ['encoder', 'decoder'] as const) {
    const layers = layersOf(stack === 'encoder' ? s.encoderLayers : s.decoderLayers, stack === 'encoder' ? m.encoderLayers : m.decoderLayers);
    for (const l of layers) {
      for (const c of s.components) {
        const point = POINTS[c][stack];
        if (point) hooks.push(`${stack}.blocks.${l}.${point}`);
      }
    }
  }
  return hooks;
}

export function sourceOf(s: Settings): Source {
  switch (s.corruption) {
    case 'pair':
    case 'white-noise':
      return defaultSource(s.direction);
    case 'noise':
      return { kind: 'noise', scale: s.sigma, seed: 0 };
    case 'zero':
      return { kind: 'zero' };
    case 'mean':
      return { kind: 'mean' };
  }
}

/** Encoder positions are 20 ms apart. */
export const ENCODER_MS = 20;

/**
 * The two sweeps a run makes: time bins (for the layer × time heatmaps) and whole layers
 * (every position of the clip at once, for the per-layer chart). Encoder bins cover the
 * clips, not the window's silent padding.
 */
export function sweepSpecs(s: Settings, m: ModelShape, encoderPositions: number): { bins: SweepSpec; layers: SweepSpec } {
  const base = {
    hooks: hooksOf(s, m),
    heads: s.heads,
    direction: s.direction,
    source: sourceOf(s),
    metric: s.metric,
    encoderRange: [0, Math.max(1, encoderPositions)] as [number, number],
  };
  return {
    bins: { ...base, positions: { kind: 'bins', size: Math.max(1, Math.round(s.binMs / ENCODER_MS)) } },
    layers: { ...base, heads: 'all', positions: { kind: 'all' } },
  };
}
