/** LayerNorm kernel against the float64 loop on Chromium's WebGPU: vec4 and scalar rows, 1 to 1500 rows, a large row mean. */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { layerNorm, setKernelPath } from '../../models/ops.ts';
import { TOL_F32, checked, diff, random, read } from '../testing.ts';
import { layerNormRef } from './layernorm.ref.ts';

describe('LayerNorm kernel (WebGPU) vs plain loops', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
    setKernelPath('custom');
  });

  for (const [rows, d, offset] of [[1, 4, 0], [7, 7, 0], [1, 1, 0], [65, 384, 0], [1500, 384, 30], [3, 12, 1000]] as const) {
    it(`${rows} rows × ${d}${offset ? `, mean ${offset}` : ''}`, async () => {
      const x = random(rows * d, rows + d, 3).map((v) => v + offset);
      const g = random(d, 3).map((v) => 1 + v * 0.1);
      const b = random(d, 4, 0.1);
      const got = await checked(() => read(tf.tidy(() => layerNorm(tf.tensor3d(x, [1, rows, d]), tf.tensor1d(g), tf.tensor1d(b), 1e-5))));
      // A constant row (d = 1) normalises to exactly β.
      expect(diff(got, layerNormRef(x, g, b, rows, d, 1e-5)).rel).toBeLessThanOrEqual(offset >= 1000 ? 1e-3 : TOL_F32);
    });
  }
});
