/**
 * A sweep survives losing the WebGPU device: the variants run in chunks through
 * runBatchesWithFallback (models/device-loss.ts); the device is destroyed while the second
 * chunk is on the GPU; the backend falls back to wasm, the model and base runs are rebuilt
 * there, the interrupted chunk re-runs, and the whole result equals the same sweep on wasm.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../models/backend.ts';
import { currentDevice, runBatchesWithFallback } from '../models/device-loss.ts';
import { loadCheckpoint } from '../models/load.ts';
import { PatchLab, planVariants, type PatchResult } from '../lab/sweep.ts';
import type { SweepSpec } from '../lab/spec.ts';
import { readRepoFile } from './util/fixtures.ts';
import { SafeTensors } from '../models/safetensors.ts';

const DIR = 'tests/fixtures/micro';
async function need(p: string): Promise<Uint8Array> {
  const b = await readRepoFile(`${DIR}/${p}`);
  if (!b) throw new Error(`missing fixture ${DIR}/${p}`);
  return b;
}

const spec: SweepSpec = {
  hooks: ['encoder.blocks.*.hook_resid_post', 'decoder.blocks.*.hook_cross_attn_out'],
  positions: { kind: 'bins', size: 25 },
  heads: 'all',
  direction: 'denoise',
  source: { kind: 'clean' },
  metric: 'logit_diff',
};

describe('device loss during a sweep', () => {
  afterAll(async () => {
    await initBackend('cpu');
  });

  it('falls back to wasm, re-runs the interrupted batch and keeps the finished ones', async () => {
    const config = JSON.parse(new TextDecoder().decode(await need('config.json')));
    const safetensors = await need('model.safetensors');
    const golden = SafeTensors.parse(await need('golden.safetensors'));
    const meta = JSON.parse(new TextDecoder().decode(await need('lab.json'))) as { prefix: number[]; target: number; foil: number };
    const inputs = { cleanMel: golden.getF32('logmel.clean'), corruptMel: golden.getF32('logmel.corrupt'), prefix: meta.prefix, target: meta.target, foil: meta.foil };
    const build = async () => {
      const { model } = await loadCheckpoint({ config, safetensors });
      return { model, lab: await PatchLab.create(model, inputs) };
    };

    // Reference: the whole sweep on wasm.
    await initBackend('wasm');
    const ref = await build();
    const want = (await ref.lab.sweep(spec)).results;
    ref.lab.dispose();
    ref.model.dispose();

    await initBackend('webgpu');
    let state = await build();
    const variants = planVariants(spec, state.model.config, inputs.prefix.length);
    const chunks: (typeof variants)[] = [];
    for (let i = 0; i < variants.length; i += 4) chunks.push(variants.slice(i, i + 4));
    const backends: string[] = [];
    const fallbacks: string[] = [];
    let destroyed = false;
    const parts = await runBatchesWithFallback(
      chunks,
      async (chunk, i) => {
        backends.push(`${i}:${tf.getBackend()}`);
        const pending = state.lab.runVariants(chunk, spec.direction, spec.metric);
        if (i === 1 && !destroyed) {
          destroyed = true;
          currentDevice()!.destroy(); // mid-batch: its kernels are recorded, its readback pending
        }
        return (await pending).results;
      },
      {
        recover: async () => {
          try {
            state.lab.dispose();
            state.model.dispose();
          } catch {
            // tensors of the lost device
          }
          state = await build();
        },
        onFallback: (reason, info) => fallbacks.push(`${reason} → ${info.name}`),
      },
    );
    const got: PatchResult[] = parts.flat();
    state.lab.dispose();
    state.model.dispose();

    console.log(`[device-loss] batches ran on ${backends.join(', ')}; fallback: ${fallbacks.join('; ')}`);
    expect(destroyed).toBe(true);
    expect(fallbacks).toHaveLength(1);
    expect(tf.getBackend()).toBe('wasm');
    expect(backends[0]).toBe('0:webgpu');
    expect(backends).toContain('1:wasm');
    expect(got).toHaveLength(want.length);
    got.forEach((r, i) => {
      expect(r.hook).toBe(want[i].hook);
      expect(r.position).toBe(want[i].position);
      expect(Math.abs(r.value - want[i].value)).toBeLessThan(1e-4);
    });
  });
});
