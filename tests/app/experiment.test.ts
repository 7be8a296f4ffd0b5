/** Experiment settings → the lab's SweepSpec (app/experiment.ts). */
import { describe, expect, it } from 'vitest';
import { SweepSpecSchema } from '../../lab/spec.ts';
import { DEFAULT_SETTINGS, SettingsSchema, hooksOf, sourceOf, sweepSpecs } from '../../app/experiment.ts';

const tiny = { encoderLayers: 4, decoderLayers: 4 };

describe('experiment settings', () => {
  it('name real hook points per stack, encoder first, skipping components a stack lacks', () => {
    const hooks = hooksOf({ ...DEFAULT_SETTINGS, components: ['attn_out', 'cross_attn_out'], encoderLayers: [1], decoderLayers: [0, 3] }, tiny);
    expect(hooks).toEqual([
      'encoder.blocks.1.hook_attn_out',
      'decoder.blocks.0.hook_self_attn_out',
      'decoder.blocks.0.hook_cross_attn_out',
      'decoder.blocks.3.hook_self_attn_out',
      'decoder.blocks.3.hook_cross_attn_out',
    ]);
    // Layers the model does not have are dropped, not sent.
    expect(hooksOf({ ...DEFAULT_SETTINGS, components: ['mlp_out'], encoderLayers: [0, 9], decoderLayers: [] }, tiny)).toEqual(['encoder.blocks.0.hook_mlp_out']);
  });

  it('bin the clips (20 ms per encoder position), not the padding, and give valid SweepSpecs', () => {
    const { bins, layers } = sweepSpecs({ ...DEFAULT_SETTINGS, binMs: 100 }, tiny, 37);
    expect(bins.positions).toEqual({ kind: 'bins', size: 5 });
    expect(bins.encoderRange).toEqual([0, 37]);
    expect(layers.positions).toEqual({ kind: 'all' });
    expect(SweepSpecSchema.safeParse(bins).success).toBe(true);
    expect(SweepSpecSchema.safeParse(layers).success).toBe(true);
    expect(bins.hooks).toHaveLength(4 * 3 + 4 * 4);
  });

  it('map corruption sources onto the lab', () => {
    expect(sourceOf({ ...DEFAULT_SETTINGS, corruption: 'pair', direction: 'denoise' })).toEqual({ kind: 'clean' });
    expect(sourceOf({ ...DEFAULT_SETTINGS, corruption: 'white-noise', direction: 'noise' })).toEqual({ kind: 'corrupt' });
    expect(sourceOf({ ...DEFAULT_SETTINGS, corruption: 'noise', sigma: 3 })).toEqual({ kind: 'noise', scale: 3, seed: 0 });
    expect(sourceOf({ ...DEFAULT_SETTINGS, corruption: 'mean' })).toEqual({ kind: 'mean' });
  });

  it('validate with a strict schema', () => {
    expect(SettingsSchema.safeParse(DEFAULT_SETTINGS).success).toBe(true);
    expect(SettingsSchema.safeParse({ ...DEFAULT_SETTINGS, components: ['resid_pre', 'mystery'] }).success).toBe(false);
    expect(SettingsSchema.safeParse({ ...DEFAULT_SETTINGS, extra: 1 }).success).toBe(false);
  });
});
