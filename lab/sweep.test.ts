/**
 * The cached, batched sweep against the plainest possible patching: one full
 * forward per variant, batch 1, nothing reused. Same answers, far fewer blocks.
 */
import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../models/backend.ts';
import type { Whisper } from '../models/whisper.ts';
import { HookSession } from '../models/hook-session.ts';
import { loadFixture, type Fixture } from '../tests/parity/parity-core.ts';
import { metricOf } from './metrics.ts';
import { buildReplacements } from './patch.ts';
import { OUT_OF_MEMORY, PatchLab, sweepInChunks, type PatchResult } from './sweep.ts';
import { baseRun, type Metric, type SweepSpec, type Variant } from './spec.ts';
import { planVariants } from './sweep.ts';

let f: Fixture;
let lab: PatchLab;

beforeAll(async () => {
  await initBackend('wasm');
  f = await loadFixture();
  const g = f.meta.greedy;
  lab = await PatchLab.create(f.loaded.model, {
    cleanMel: f.golden.getF32('logmel.clean'),
    corruptMel: f.golden.getF32('logmel.corrupt'),
    prefix: g.clean.prompt,
    target: g.clean.tokens[0],
    foil: g.corrupt.tokens[0],
  });
});
afterAll(() => {
  lab?.dispose();
  f?.loaded.model.dispose();
});

/** Full forward per variant with every hook of both runs captured up front. */
async function naive(variants: readonly Variant[], spec: Pick<SweepSpec, 'direction' | 'metric'>): Promise<number[]> {
  const model = f.loaded.model;
  const c = model.config;
  const full = (run: 'clean' | 'corrupt') => {
    const hooks = new HookSession({ capture: () => true });
    const r = lab.runs[run];
    const enc = model.encode(r.mel, hooks);
    const cross = model.crossKV(enc, hooks);
    const { logits, present } = model.decode(r.tokens, cross, hooks);
    tf.dispose([enc, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
    return hooks;
  };
  const caches = { clean: full('clean'), corrupt: full('corrupt') };
  const base = baseRun(spec.direction);
  const out: number[] = [];
  for (const v of variants) {
    const hooks = new HookSession({ replace: buildReplacements([v.patches], { base, valueOf: (r, h) => caches[r].cache.get(h)! }) });
    const r = lab.runs[base];
    const enc = f.loaded.model.encode(r.mel, hooks);
    const cross = model.crossKV(enc, hooks);
    const { logits, present } = model.decode(r.tokens, cross, hooks);
    const T = logits.shape[1];
    const last = tf.reshape(tf.slice(logits, [0, T - 1, 0], [1, 1, c.vocabSize]), [1, c.vocabSize]) as tf.Tensor2D;
    const cleanLogProbs = tf.reshape(tf.logSoftmax(lab.runs.clean.lastLogits), [-1]) as tf.Tensor1D;
    const m = metricOf(spec.metric as Metric, last, { target: lab.inputs.target, foil: lab.inputs.foil, cleanLogProbs });
    out.push((await m.data())[0]);
    tf.dispose([enc, logits, last, m, cleanLogProbs, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  }
  caches.clean.dispose();
  caches.corrupt.dispose();
  return out;
}

const sweeps: [string, SweepSpec][] = [
  ['decoder components per token (denoise)', { hooks: ['decoder.blocks.*.hook_resid_pre', 'decoder.blocks.*.hook_cross_attn_out', 'decoder.blocks.*.hook_mlp_out', 'decoder.hook_ln_final'], positions: { kind: 'each' }, heads: 'all', direction: 'denoise', source: { kind: 'clean' }, metric: 'logit_diff' }],
  ['encoder time bins (noise)', { hooks: ['encoder.hook_embed', 'encoder.blocks.*.hook_resid_post', 'encoder.blocks.*.attn.hook_pattern', 'encoder.hook_ln_post'], positions: { kind: 'bins', size: 25 }, heads: 'all', direction: 'noise', source: { kind: 'corrupt' }, metric: 'logit_diff' }],
  ['heads, cross K/V and z (denoise, KL)', { hooks: ['decoder.blocks.*.cross_attn.hook_k', 'decoder.blocks.*.cross_attn.hook_z', 'encoder.blocks.1.attn.hook_q'], positions: { kind: 'all' }, heads: 'each', direction: 'denoise', source: { kind: 'clean' }, metric: 'kl' }],
  ['ablations: zero, mean, Gaussian noise', { hooks: ['encoder.blocks.0.hook_mlp_out', 'decoder.blocks.1.hook_self_attn_out', 'hook_logits'], positions: { kind: 'all' }, heads: 'all', direction: 'noise', source: { kind: 'mean' }, metric: 'logprob' }],
];

describe('PatchLab sweeps', () => {
  for (const [name, spec] of sweeps) {
    it(`${name}: equal to one full forward per variant`, async () => {
      const result = await lab.sweep(spec, { maxBatch: 7 });
      const variants = planVariants(spec, f.loaded.config, lab.inputs.prefix.length);
      const want = await naive(variants, spec);
      expect(result.results).toHaveLength(want.length);
      const err = Math.max(...result.results.map((r, i) => Math.abs(r.value - want[i])));
      expect(err).toBeLessThan(1e-4);
      // Effects vary, so a patch landing in the wrong place would show.
      const values = new Set(result.results.map((r) => r.value.toFixed(4)));
      expect(values.size).toBeGreaterThan(Math.min(3, want.length - 1));
    });
  }

  it('zero and Gaussian-noise sources match the naive path too', async () => {
    for (const source of [{ kind: 'zero' }, { kind: 'noise', scale: 3, seed: 7 }] as const) {
      const spec: SweepSpec = { hooks: ['encoder.blocks.1.hook_resid_pre', 'decoder.blocks.0.hook_mlp_out'], positions: { kind: 'bins', size: 50 }, heads: 'all', direction: 'noise', source, metric: 'prob' };
      const result = await lab.sweep(spec);
      const want = await naive(planVariants(spec, f.loaded.config, lab.inputs.prefix.length), spec);
      expect(Math.max(...result.results.map((r, i) => Math.abs(r.value - want[i])))).toBeLessThan(1e-4);
    }
  });

  it('costs fewer block evaluations than a full forward per patch', async () => {
    const c = f.loaded.config;
    const spec: SweepSpec = { hooks: ['decoder.blocks.*.hook_resid_post'], positions: { kind: 'each' }, heads: 'all', direction: 'denoise', source: { kind: 'clean' }, metric: 'logit_diff' };
    const r = await lab.sweep(spec);
    // Per position: block 0 recomputes 2 decoder blocks, block 1 recomputes 1; no encoder.
    const T = lab.inputs.prefix.length;
    expect(r.cost.variants).toBe(c.decoderLayers * T);
    expect(r.cost.naiveBlockEvals - r.cost.blockEvals).toBe(r.cost.variants * (c.encoderLayers + c.decoderLayers) - T * (2 + 1));
    expect(r.cost.blockEvals * 2).toBeLessThan(r.cost.naiveBlockEvals);
    // Encoder patches: block 0 reruns 2 encoder + 2 decoder blocks, block 1 reruns 1 + 2.
    const enc = await lab.sweep({ ...spec, hooks: ['encoder.blocks.*.hook_resid_post'], positions: { kind: 'bins', size: 50 } });
    expect(enc.cost.variants).toBe(4);
    expect(enc.cost.naiveBlockEvals - enc.cost.blockEvals).toBe(4 * 4 - (2 * 4 + 2 * 3));
  });

  it('a patch whose source is the base run itself changes nothing', async () => {
    const spec: SweepSpec = { hooks: ['encoder.blocks.0.hook_resid_mid', 'decoder.blocks.1.hook_resid_mid_cross'], positions: { kind: 'all' }, heads: 'all', direction: 'denoise', source: { kind: 'corrupt' }, metric: 'logit_diff' };
    const r = await lab.sweep(spec);
    for (const x of r.results) expect(Math.abs(x.value - r.corrupt)).toBeLessThan(1e-5);
  });

  it('denoising the whole encoder input recovers the clean answer exactly', async () => {
    const r = await lab.sweep({ hooks: ['encoder.hook_input'], positions: { kind: 'all' }, heads: 'all', direction: 'denoise', source: { kind: 'clean' }, metric: 'logit_diff' });
    expect(Math.abs(r.results[0].effect - 1)).toBeLessThan(1e-4);
  });

  it('streams progress and partial results, plans batches from the memory budget, and cancels', async () => {
    const spec: SweepSpec = { hooks: ['encoder.blocks.*.hook_resid_post'], positions: { kind: 'bins', size: 10 }, heads: 'all', direction: 'denoise', source: { kind: 'clean' }, metric: 'logit_diff' };
    const progress: number[] = [];
    let streamed = 0;
    const big = await lab.sweep(spec, { onProgress: (p) => progress.push(p.done), onResults: (r) => (streamed += r.length) });
    expect(progress.at(-1)).toBe(big.results.length);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(streamed).toBe(big.results.length);
    // A budget that fits only a few variants at a time gives more, smaller batches, same numbers.
    const small = await lab.sweep(spec, { memoryBudget: 2 * 1024 ** 2 });
    expect(small.cost.batches).toBeGreaterThan(big.cost.batches);
    small.results.forEach((r, i) => expect(r.value).toBeCloseTo(big.results[i].value, 5));

    const controller = new AbortController();
    let batches = 0;
    const cancelled = lab.sweep(spec, { maxBatch: 2, onResults: () => ++batches === 2 && controller.abort(), signal: controller.signal });
    await expect(cancelled).rejects.toMatchObject({ code: 'cancelled' });
    expect(batches).toBe(2);
    // The lab is still usable after a cancelled sweep.
    const again = await lab.sweep(spec);
    again.results.forEach((r, i) => expect(r.value).toBeCloseTo(big.results[i].value, 5));
  });

  it('leaves no tensors behind once its caches are filled', async () => {
    const spec: SweepSpec = { hooks: ['decoder.blocks.*.cross_attn.hook_z', 'encoder.blocks.1.hook_mlp_out'], positions: { kind: 'all' }, heads: 'each', direction: 'noise', source: { kind: 'noise', scale: 1, seed: 3 }, metric: 'kl' };
    await lab.sweep(spec);
    const before = tf.memory().numTensors;
    await lab.sweep(spec);
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe('sweeps that meet faults', () => {
  const spec: SweepSpec = { hooks: ['encoder.blocks.*.hook_resid_post', 'decoder.blocks.*.hook_mlp_out'], positions: { kind: 'bins', size: 10 }, heads: 'all', direction: 'denoise', source: { kind: 'clean' }, metric: 'logit_diff' };

  it('in chunks of planned batches: the same numbers, the same batches, streamed in order', async () => {
    const whole = await lab.sweep(spec, { maxBatch: 4 });
    const progress: number[] = [];
    const streamed: PatchResult[] = [];
    const chunkSizes: number[] = [];
    const chunked = await sweepInChunks(() => lab, spec, {
      maxBatch: 4,
      batchesPerChunk: 2,
      onProgress: (p) => progress.push(p.done),
      onResults: (r) => streamed.push(...r),
      runChunks: async (chunks, run) => {
        const out = [];
        for (let i = 0; i < chunks.length; i++) {
          chunkSizes.push(chunks[i].length);
          out.push(await run(chunks[i], i));
        }
        return out;
      },
    });
    expect(chunkSizes.length).toBeGreaterThan(2);
    expect(chunked.results.map((r) => [r.hook, r.position, r.value])).toEqual(whole.results.map((r) => [r.hook, r.position, r.value]));
    expect(chunked.cost.batches).toBe(whole.cost.batches);
    expect(chunked.cost.variants).toBe(whole.cost.variants);
    expect(progress.at(-1)).toBe(whole.results.length);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
    expect(streamed).toHaveLength(whole.results.length);
  });

  it('a chunk that runs again (device lost) streams only its second results', async () => {
    const whole = await lab.sweep(spec, { maxBatch: 4 });
    const streamed: PatchResult[] = [];
    let repeated = false;
    const chunked = await sweepInChunks(() => lab, spec, {
      maxBatch: 4,
      onResults: (r) => streamed.push(...r),
      runChunks: async (chunks, run) => {
        const out = [];
        for (let i = 0; i < chunks.length; i++) {
          if (i === 1 && !repeated) {
            repeated = true;
            await run(chunks[i], i); // discarded, as runBatchesWithFallback does after a loss
          }
          out.push(await run(chunks[i], i));
        }
        return out;
      },
    });
    expect(repeated).toBe(true);
    expect(streamed).toHaveLength(whole.results.length);
    expect(chunked.results.map((r) => r.value)).toEqual(whole.results.map((r) => r.value));
  });

  /** Makes every patched pass wider than `rows` variants fail like an exhausted allocator. */
  function failAbove(model: Whisper, rows: number, message: string): () => void {
    const original = model.decodeFrom.bind(model);
    let failures = 0;
    model.decodeFrom = (...args: Parameters<Whisper['decodeFrom']>) => {
      const logits = original(...args);
      if (logits.shape[0] > rows) {
        failures++;
        throw new Error(message);
      }
      return logits;
    };
    return () => {
      delete (model as { decodeFrom?: unknown }).decodeFrom;
      expect(failures).toBeGreaterThan(0);
    };
  }

  it('out of memory: halves the batch until it fits, with the same numbers', async () => {
    const fresh = await PatchLab.create(f.loaded.model, lab.inputs);
    try {
      const want = await fresh.sweep(spec);
      const before = tf.memory().numTensors;
      const restore = failAbove(f.loaded.model, 3, 'Out of memory'); // tfjs-wasm's words
      let got;
      try {
        got = await fresh.sweep(spec);
      } finally {
        restore();
      }
      expect(got.results.map((r) => r.value)).toEqual(want.results.map((r) => r.value));
      expect(got.cost.batches).toBeGreaterThan(want.cost.batches);
      // The failed attempts left no tensors behind.
      expect(tf.memory().numTensors).toBe(before);
      // The smaller size is remembered: the next sweep does not fail first.
      const restore2 = failAbove(f.loaded.model, 3, 'WebGPU: buffer allocation failed: out of memory');
      await expect(fresh.sweep(spec)).resolves.toBeTruthy();
      expect(() => restore2()).toThrow(); // no failures this time
    } finally {
      fresh.dispose();
    }
  });

  it('out of memory even at one variant: one clear sentence', async () => {
    const restore = failAbove(f.loaded.model, 0, 'Out of memory');
    try {
      await expect(lab.sweep(spec)).rejects.toMatchObject({ code: 'out-of-memory', message: OUT_OF_MEMORY });
    } finally {
      restore();
    }
    // Other errors are not mistaken for memory.
    const restore2 = failAbove(f.loaded.model, 0, 'shapes do not match');
    try {
      await expect(lab.sweep(spec)).rejects.toThrow('shapes do not match');
    } finally {
      restore2();
    }
  });
});
