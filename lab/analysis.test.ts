/**
 * Grounding coefficients, lenses, CKA and attribution patching on the micro model,
 * each checked against a different route to the same number.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../models/backend.ts';
import { loadFixture, type Fixture } from '../tests/parity/parity-core.ts';
import { attributionPatching, pearson, ranks } from './attribution.ts';
import { layerCka, linearCka } from './cka.ts';
import { groundingPoint, inputGrounding, listenVsGuess, pathwayGrounding } from './grounding.ts';
import { criticalLayer, encoderLens, logitLens, saturationLayer } from './lens.ts';
import { PatchLab } from './sweep.ts';
import type { Variant } from './spec.ts';

let f: Fixture;
let lab: PatchLab;
let cleanMel: Float32Array;
let corruptMel: Float32Array;
let prompt: number[];

beforeAll(async () => {
  await initBackend('wasm');
  f = await loadFixture();
  cleanMel = f.golden.getF32('logmel.clean');
  corruptMel = f.golden.getF32('logmel.corrupt');
  prompt = f.meta.greedy.clean.prompt;
  lab = await PatchLab.create(f.loaded.model, { cleanMel, corruptMel, prefix: prompt, target: f.meta.greedy.clean.tokens[0], foil: f.meta.greedy.corrupt.tokens[0] });
});
afterAll(() => {
  lab?.dispose();
  f?.loaded.model.dispose();
});

describe('pathway grounding coefficient', () => {
  it('is A/(|A|+|T|) of the single-layer and all-layer patches', async () => {
    const g = await pathwayGrounding(lab);
    const last = prompt.length - 1;
    const one = async (hooks: string[]) => {
      const v: Variant = { patches: hooks.map((hook) => ({ hook, positions: [last], heads: null, source: { kind: 'clean' } })), label: { hook: hooks[0], position: last, positionEnd: null, head: null } };
      return (await lab.runVariants([v], 'denoise', 'logit_diff')).results[0].effect;
    };
    for (const l of g.layers) {
      expect(l.A).toBeCloseTo(await one([`decoder.blocks.${l.layer}.hook_cross_attn_out`]), 6);
      expect(l.T).toBeCloseTo(await one([`decoder.blocks.${l.layer}.hook_self_attn_out`]), 6);
      expect(l.gc).toBeCloseTo(l.A / (Math.abs(l.A) + Math.abs(l.T)), 12);
    }
    expect(g.overall.A).toBeCloseTo(await one(['decoder.blocks.0.hook_cross_attn_out', 'decoder.blocks.1.hook_cross_attn_out']), 6);
    // The overall patch is not the sum of the per-layer ones (layers interact).
    expect(g.overall.A).not.toBeCloseTo(g.layers[0].A + g.layers[1].A, 3);
  });

  it('handles degenerate cases', () => {
    expect(groundingPoint(0.5, 0)).toMatchObject({ gc: 1, ratio: Infinity });
    expect(groundingPoint(-0.2, 0.2).gc).toBeCloseTo(-0.5);
    expect(groundingPoint(0, 0).gc).toBeNaN();
  });
});

describe('listen vs guess along a transcript', () => {
  it('equals a separate patching run at each token', async () => {
    const transcript = [...f.meta.greedy.clean.tokens.slice(0, 3)];
    const per = await listenVsGuess(f.loaded.model, cleanMel, corruptMel, prompt, transcript);
    expect(per).toHaveLength(3);
    for (let i = 0; i < transcript.length; i++) {
      const sub = await PatchLab.create(f.loaded.model, { cleanMel, corruptMel, prefix: [...prompt, ...transcript.slice(0, i)], target: transcript[i], foil: 0 });
      const pos = prompt.length - 1 + i;
      const all = (part: string) => ({
        patches: [0, 1].map((l) => ({ hook: `decoder.blocks.${l}.hook_${part}_out`, positions: [pos], heads: null, source: { kind: 'clean' as const } })),
        label: { hook: part, position: pos, positionEnd: null, head: null },
      });
      const r = await sub.runVariants([all('cross_attn'), all('self_attn')], 'denoise', 'logprob');
      expect(per[i].position).toBe(pos);
      expect(per[i].clean).toBeCloseTo(sub.baseMetric('clean', 'logprob'), 4);
      expect(per[i].A).toBeCloseTo(r.results[0].effect, 4);
      expect(per[i].T).toBeCloseTo(r.results[1].effect, 4);
      sub.dispose();
    }
  });
});

describe('input grounding coefficient', () => {
  it('compares an audio corruption with a text-context corruption', async () => {
    const { target, foil } = lab.inputs;
    // Text condition: a previous-text prompt pair that differs in one token.
    const prev = (w: number) => [50361, w, ...prompt];
    const g = await inputGrounding(f.loaded.model, { cleanMel, corruptMel, cleanPrefix: prev(1000), corruptPrefix: prev(2000), target, foil });
    expect(g.values.corruptAudio).not.toBeCloseTo(g.values.clean, 3);
    expect(g.gc).toBeCloseTo(g.deltaAudio / (Math.abs(g.deltaAudio) + Math.abs(g.deltaText)), 12);
    // The same text on both sides isolates the audio entirely.
    const same = await inputGrounding(f.loaded.model, { cleanMel, corruptMel, cleanPrefix: prev(1000), corruptPrefix: prev(1000), target, foil });
    expect(same.deltaText).toBe(0);
    expect(Math.abs(same.gc)).toBe(1);
  });
});

describe('lenses', () => {
  it('logit lens ends at the model\'s own answer', async () => {
    const lens = await logitLens(f.loaded.model, lab.runs.clean, { target: lab.inputs.target, foil: lab.inputs.foil });
    expect(lens.layers.map((l) => l.layer)).toEqual([-1, 0, 1]);
    const lastLayer = lens.layers.at(-1)!;
    expect(lastLayer.top[0].token).toBe(lens.finalTop);
    expect(lastLayer.logitDiff).toBeCloseTo(lab.baseMetric('clean', 'logit_diff'), 4);
    expect(lastLayer.targetProb).toBeCloseTo(lab.baseMetric('clean', 'prob'), 4);
    expect(lens.saturationLayer).not.toBeNull();
  });

  it('encoder lens: the last encoder layer reproduces the real run', async () => {
    const lens = await encoderLens(f.loaded.model, lab.runs.corrupt, { target: lab.inputs.target, foil: lab.inputs.foil });
    expect(lens.layers).toHaveLength(3);
    expect(lens.layers.at(-1)!.logitDiff).toBeCloseTo(lab.baseMetric('corrupt', 'logit_diff'), 4);
    // Earlier layers give different answers (the lens does something).
    expect(lens.layers[0].logitDiff).not.toBeCloseTo(lens.layers[2].logitDiff, 2);
  });

  it('saturation and critical layers follow their definitions', () => {
    expect(saturationLayer([5, 7, 7, 7], 7, [-1, 0, 1, 2])).toBe(0);
    expect(saturationLayer([7, 5, 7], 7, [0, 1, 2])).toBe(2);
    expect(saturationLayer([1, 2], 7, [0, 1])).toBeNull();
    expect(criticalLayer([0, 1, 2, 3], [0.01, 0.2, 0.6, 0.2], 0.1)).toBeCloseTo((1 * 0.2 + 2 * 0.6 + 3 * 0.2) / 1.0);
    expect(criticalLayer([0, 1], [0.01, 0.02], 0.1)).toBeNull();
  });
});

describe('linear CKA', () => {
  it('is invariant to rotations and scaling, and 1 on the diagonal', async () => {
    const x = tf.randomNormal([50, 8], 0, 1, 'float32', 1) as tf.Tensor2D;
    const q = tf.linalg.qr(tf.randomNormal([8, 8], 0, 1, 'float32', 2) as tf.Tensor2D)[0];
    const y = tf.mul(tf.matMul(x, q), 3) as tf.Tensor2D;
    const z = tf.randomNormal([50, 8], 0, 1, 'float32', 3) as tf.Tensor2D;
    expect((await linearCka(x, y).data())[0]).toBeCloseTo(1, 4);
    expect((await linearCka(x, z).data())[0]).toBeLessThan(0.6);
    const r = await layerCka(f.loaded.model, lab.runs.clean, 'encoder', [0, 40]);
    expect(r.matrix).toHaveLength(3);
    for (let i = 0; i < 3; i++) {
      expect(r.matrix[i][i]).toBe(1);
      for (let j = 0; j < 3; j++) {
        expect(r.matrix[i][j]).toBeCloseTo(r.matrix[j][i], 10);
        expect(r.matrix[i][j]).toBeGreaterThan(0);
        expect(r.matrix[i][j]).toBeLessThanOrEqual(1 + 1e-6);
      }
    }
  });
});

describe('attribution patching', () => {
  it('is exact where the metric is linear in the activation (decoder.hook_ln_final)', async () => {
    const r = await attributionPatching(lab, ['decoder.hook_ln_final'], { topK: 4 });
    expect(r.entries).toHaveLength(prompt.length);
    const last = r.entries.find((e) => e.position === prompt.length - 1)!;
    expect(last.real).toBeDefined();
    expect(last.estimate).toBeCloseTo(last.real!, 4);
    // Earlier positions cannot reach the last position's logits through ln_final.
    for (const e of r.entries.filter((x) => x.position !== prompt.length - 1)) expect(e.estimate).toBe(0);
  });

  it('ranks real patches on the residual streams and reports agreement', async () => {
    const r = await attributionPatching(lab, ['encoder.blocks.*.hook_resid_post', 'decoder.blocks.*.hook_resid_pre', 'decoder.blocks.*.hook_cross_attn_out'], { topK: 12 });
    expect(r.verified).toHaveLength(12);
    expect(r.passes).toEqual({ forward: 1, backward: 1 });
    console.log(`[attribution] spearman ${r.spearman.toFixed(3)}, pearson ${r.pearson.toFixed(3)} over the top 12`);
    expect(r.pearson).toBeGreaterThan(0.5);
  });

  it('rank correlation handles ties', () => {
    expect(ranks([3, 1, 2, 1])).toEqual([3, 0.5, 2, 0.5]);
    expect(pearson([1, 2, 3], [2, 4, 6])).toBeCloseTo(1);
  });
});
