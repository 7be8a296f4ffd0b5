import { describe, expect, it } from 'vitest';
import { expandHookPatterns, hookNames, parseHookName } from './hooks.ts';
import { isEarshotError } from './errors.ts';

describe('hook names', () => {
  it('pins the ordered list for a one-block encoder and decoder', () => {
    expect(hookNames({ encoderLayers: 1, decoderLayers: 1 })).toEqual([
      'encoder.hook_input',
      'encoder.hook_embed',
      'encoder.blocks.0.hook_resid_pre',
      'encoder.blocks.0.attn.hook_q',
      'encoder.blocks.0.attn.hook_k',
      'encoder.blocks.0.attn.hook_v',
      'encoder.blocks.0.attn.hook_pattern',
      'encoder.blocks.0.attn.hook_z',
      'encoder.blocks.0.hook_attn_out',
      'encoder.blocks.0.hook_resid_mid',
      'encoder.blocks.0.mlp.hook_pre',
      'encoder.blocks.0.mlp.hook_post',
      'encoder.blocks.0.hook_mlp_out',
      'encoder.blocks.0.hook_resid_post',
      'encoder.hook_ln_post',
      'decoder.hook_embed',
      'decoder.blocks.0.hook_resid_pre',
      'decoder.blocks.0.self_attn.hook_q',
      'decoder.blocks.0.self_attn.hook_k',
      'decoder.blocks.0.self_attn.hook_v',
      'decoder.blocks.0.self_attn.hook_pattern',
      'decoder.blocks.0.self_attn.hook_z',
      'decoder.blocks.0.hook_self_attn_out',
      'decoder.blocks.0.hook_resid_mid',
      'decoder.blocks.0.cross_attn.hook_q',
      'decoder.blocks.0.cross_attn.hook_k',
      'decoder.blocks.0.cross_attn.hook_v',
      'decoder.blocks.0.cross_attn.hook_pattern',
      'decoder.blocks.0.cross_attn.hook_z',
      'decoder.blocks.0.hook_cross_attn_out',
      'decoder.blocks.0.hook_resid_mid_cross',
      'decoder.blocks.0.mlp.hook_pre',
      'decoder.blocks.0.mlp.hook_post',
      'decoder.blocks.0.hook_mlp_out',
      'decoder.blocks.0.hook_resid_post',
      'decoder.hook_ln_final',
      'hook_logits',
    ]);
  });

  it('counts blocks of unequal depth', () => {
    const names = hookNames({ encoderLayers: 4, decoderLayers: 2 });
    expect(names).toHaveLength(2 + 4 * 12 + 1 + 1 + 2 * 19 + 2);
    expect(new Set(names).size).toBe(names.length);
  });

  it('parses names into stack, block, point and attention module', () => {
    expect(parseHookName('decoder.blocks.3.cross_attn.hook_pattern')).toEqual({
      stack: 'decoder', block: 3, point: 'cross_attn.hook_pattern', attention: 'cross_attn',
    });
    expect(parseHookName('encoder.blocks.0.mlp.hook_post')).toMatchObject({ block: 0, attention: null });
    expect(parseHookName('hook_logits')).toMatchObject({ stack: 'decoder', block: null });
  });

  it('rejects unknown points, out-of-range blocks and odd indices with a clear error', () => {
    const depth = { encoderLayers: 2, decoderLayers: 2 };
    for (const bad of ['encoder.blocks.0.attn.hook_x', 'decoder.blocks.2.hook_resid_pre', 'encoder.blocks.01.hook_resid_pre', 'blocks.0.hook_resid_pre', '__proto__', '']) {
      let err: unknown;
      try {
        parseHookName(bad, depth);
      } catch (e) {
        err = e;
      }
      expect(isEarshotError(err, 'bad-hook'), bad).toBe(true);
    }
  });

  it('expands * to every block in computation order', () => {
    const depth = { encoderLayers: 3, decoderLayers: 2 };
    expect(expandHookPatterns(['decoder.blocks.*.hook_resid_post', 'encoder.blocks.*.hook_resid_post'], depth)).toEqual([
      'encoder.blocks.0.hook_resid_post',
      'encoder.blocks.1.hook_resid_post',
      'encoder.blocks.2.hook_resid_post',
      'decoder.blocks.0.hook_resid_post',
      'decoder.blocks.1.hook_resid_post',
    ]);
    expect(expandHookPatterns(['hook_logits', 'hook_logits'], depth)).toEqual(['hook_logits']);
    expect(() => expandHookPatterns(['decoder.blocks.*.attn.hook_q'], depth)).toThrow(/matches no hook/);
  });
});
