/**
 * In-place KV-cache writes on Chromium's WebGPU (the kernel writes into the cache's own
 * buffer): rows land at the offset for every batch row, earlier rows stay, the tensor is the
 * same object afterwards, and an overflow is refused. (cpu/wasm: models/kv-cache.test.ts.)
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { writeKVRows } from '../../models/ops.ts';
import { checked, random } from '../testing.ts';

describe('KV write kernel (WebGPU)', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  it('writes fresh rows at the offset, in place, keeping earlier rows', async () => {
    const [B, Smax, H, dh] = [2, 10, 3, 4];
    const row = H * dh;
    const cache = tf.zeros([B, Smax, H, dh]) as tf.Tensor4D;
    const want = new Float32Array(B * Smax * row);
    const write = async (T: number, offset: number, seed: number) => {
      const fresh = random(B * T * row, seed);
      const t = tf.tensor4d(fresh, [B, T, H, dh]);
      await checked(async () => writeKVRows(cache, t, offset));
      t.dispose();
      for (let b = 0; b < B; b++) want.set(fresh.subarray(b * T * row, (b + 1) * T * row), (b * Smax + offset) * row);
    };
    await write(3, 5, 1);
    await write(2, 8, 2);
    await write(1, 0, 3);
    expect(Array.from(await cache.data())).toEqual(Array.from(want));
    expect(() => writeKVRows(cache, tf.zeros([B, 3, H, dh]) as tf.Tensor4D, 8)).toThrow(/exceed/);
    cache.dispose();
  });
});
