/**
 * Attention kernels against the plain-loop reference on Chromium's WebGPU: the fused
 * (flash) kernel, and the pattern path (probabilities written out for a hook, then z from
 * what the hook returned). Shapes: single key/query, odd sizes, a query block of 8 rows with
 * remainders, cross-attention over 1500 encoder frames, causal queries after cached keys,
 * a partly filled preallocated cache (S < Smax), and patched batches on either side.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { attention, setKernelPath } from '../../models/ops.ts';
import { TOL_F32, checked, diff, random, read } from '../testing.ts';
import { attentionRef } from './attention.ref.ts';

interface Case {
  Bq: number;
  Bk: number;
  Bv: number;
  T: number;
  S: number;
  Smax?: number;
  H: number;
  dh: number;
  causal: boolean;
}

const CASES: Case[] = [
  { Bq: 1, Bk: 1, Bv: 1, T: 1, S: 1, H: 1, dh: 4, causal: false },
  { Bq: 1, Bk: 1, Bv: 1, T: 7, S: 7, H: 2, dh: 8, causal: true },
  { Bq: 1, Bk: 1, Bv: 1, T: 7, S: 13, H: 3, dh: 16, causal: false },
  { Bq: 1, Bk: 1, Bv: 1, T: 3, S: 10, H: 3, dh: 16, causal: true }, // queries after 7 cached keys
  { Bq: 1, Bk: 1, Bv: 1, T: 1, S: 5, Smax: 12, H: 2, dh: 8, causal: true }, // preallocated cache, 5 rows filled
  { Bq: 1, Bk: 1, Bv: 1, T: 4, S: 1500, H: 6, dh: 64, causal: false }, // decoder cross-attention
  { Bq: 1, Bk: 1, Bv: 1, T: 77, S: 77, H: 2, dh: 12, causal: true }, // 8-row blocks with a remainder of 5
  { Bq: 1, Bk: 1, Bv: 1, T: 1500, S: 1500, H: 1, dh: 64, causal: false }, // one encoder head
  { Bq: 3, Bk: 1, Bv: 1, T: 5, S: 9, H: 2, dh: 8, causal: true }, // patched queries, shared keys
  { Bq: 1, Bk: 3, Bv: 3, T: 5, S: 9, H: 2, dh: 8, causal: false }, // patched keys, shared queries
  { Bq: 1, Bk: 1, Bv: 4, T: 6, S: 70, H: 3, dh: 8, causal: false }, // only the values patched (hook_v per head)
  { Bq: 2, Bk: 2, Bv: 1, T: 70, S: 70, H: 2, dh: 8, causal: true }, // queries and keys patched, values shared
];

function inputs(c: Case, seed: number) {
  const Smax = c.Smax ?? c.S;
  // Scale 2 makes the softmax peaky enough for a wrong max or mask to show.
  return {
    q: random(c.Bq * c.T * c.H * c.dh, seed, 2),
    k: random(c.Bk * Smax * c.H * c.dh, seed + 1, 2),
    v: random(c.Bv * Smax * c.H * c.dh, seed + 2),
    Smax,
  };
}

describe('attention kernels (WebGPU) vs plain loops', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
    setKernelPath('custom');
  });

  CASES.forEach((c, i) => {
    const name = `Bq ${c.Bq} Bk ${c.Bk} Bv ${c.Bv} T ${c.T} S ${c.S}${c.Smax ? `/${c.Smax}` : ''} H ${c.H} dh ${c.dh}${c.causal ? ' causal' : ''}`;
    it(name, async () => {
      const { q, k, v, Smax } = inputs(c, 100 + i);
      const ref = attentionRef({ ...c, q, k, v, Smax });
      const kv = () => ({ k: tf.tensor4d(k, [c.Bk, Smax, c.H, c.dh]), v: tf.tensor4d(v, [c.Bv, Smax, c.H, c.dh]), length: c.S });
      const qT = () => tf.tensor4d(q, [c.Bq, c.T, c.H, c.dh]);

      const flash = await checked(() => read(tf.tidy(() => attention(qT(), kv(), c.causal))));
      expect(diff(flash, ref.z).rel, 'fused z').toBeLessThanOrEqual(TOL_F32);

      // Pattern path: the hook sees the probabilities; z must follow what it returns.
      // (No dataSync inside: a synchronous WebGPU readback loses the device in Chromium here.)
      let seen: tf.Tensor | null = null;
      const z = await checked(async () => {
        const out = tf.tidy(() =>
          attention(qT(), kv(), c.causal, (p) => {
            seen = tf.keep(p.clone());
            return p;
          }),
        );
        return read(out);
      });
      expect(diff(await read(seen!), ref.pattern).rel, 'pattern').toBeLessThanOrEqual(TOL_F32);
      expect(diff(z, ref.z).rel, 'z from the pattern').toBeLessThanOrEqual(TOL_F32);
    });
  });

  it('z follows a replaced pattern (uniform attention gives the mean of v)', async () => {
    const c: Case = { Bq: 1, Bk: 1, Bv: 1, T: 3, S: 6, H: 2, dh: 8, causal: false };
    const { q, k, v } = inputs(c, 7);
    const z = await checked(() =>
      read(tf.tidy(() => attention(tf.tensor4d(q, [1, 3, 2, 8]), { k: tf.tensor4d(k, [1, 6, 2, 8]), v: tf.tensor4d(v, [1, 6, 2, 8]) }, false, (p) => tf.fill(p.shape, 1 / 6) as tf.Tensor4D))),
    );
    const want = new Float32Array(3 * 2 * 8);
    for (let t = 0; t < 3; t++) for (let h = 0; h < 2; h++) for (let i = 0; i < 8; i++) for (let j = 0; j < 6; j++) want[(t * 2 + h) * 8 + i] += v[(j * 2 + h) * 8 + i] / 6;
    expect(diff(z, want).rel).toBeLessThanOrEqual(TOL_F32);
  });
});
