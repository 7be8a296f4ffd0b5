/**
 * Linear kernel (x·W + bias, GELU epilogue, f32 or f16 weight storage) against the
 * plain-loop reference, on Chromium's WebGPU. Shapes cover the vec4 path (K, N % 4 == 0),
 * the scalar path (7, 1, …), tile remainders (M not a multiple of 4 rows, N not of the
 * 4-column tile) and Whisper-tiny's real sizes.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { linear, linearWeight, matMulTransposed, setKernelPath, setWeightStorage } from '../../models/ops.ts';
import { TOL_F16_STORAGE, TOL_F32, checked, diff, random, read } from '../testing.ts';
import { fromHalf, toHalf } from './matmul.wgsl.ts';
import { matmulRef } from './matmul.ref.ts';

const SHAPES: [number, number, number][] = [
  [1, 4, 4],
  [1, 1, 1],
  [7, 7, 7],
  [7, 8, 12],
  [13, 36, 20],
  [5, 384, 1536],
  [1500, 384, 384],
  [1500, 64, 7],
];

async function run(M: number, K: number, N: number, bias: boolean, gelu: boolean, f16: boolean, seed: number) {
  const x = random(M * K, seed);
  let w = random(K * N, seed + 1, 1 / Math.sqrt(K) * 2);
  const b = bias ? random(N, seed + 2) : null;
  setWeightStorage(f16 ? 'f16' : 'f32');
  const got = await checked(async () => {
    const W = linearWeight(tf.tensor2d(w, [K, N]));
    if (f16) expect(W.f16, 'f16 copy made').toBeDefined();
    const y = tf.tidy(() => linear(tf.tensor3d(x, [1, M, K]), W, b ? tf.tensor1d(b) : null, gelu ? 'gelu' : 'none'));
    tf.dispose([W.w, W.f16 ?? []]);
    return read(y);
  });
  setWeightStorage(null);
  if (f16) w = w.map((v) => fromHalf(toHalf(v)));
  return diff(got, matmulRef(x, w, b, M, K, N, gelu));
}

describe('linear kernel (WebGPU) vs plain loops', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
    setKernelPath('custom');
  });

  for (const [M, K, N] of SHAPES) {
    it(`[${M}×${K}]·[${K}×${N}] + bias, identity and GELU`, async () => {
      for (const gelu of [false, true]) {
        const d = await run(M, K, N, true, gelu, false, M * 31 + N);
        expect(d.rel, `gelu=${gelu} maxAbs=${d.maxAbs}`).toBeLessThanOrEqual(TOL_F32);
      }
      const nb = await run(M, K, N, false, false, false, M + K);
      expect(nb.rel, 'no bias').toBeLessThanOrEqual(TOL_F32);
    });
  }

  it('f16 weight storage (packed halves, unpacked in the shader) matches half-rounded weights', async () => {
    for (const [M, K, N] of [[7, 8, 12], [1500, 384, 384], [3, 4, 4]] as const) {
      const d = await run(M, K, N, true, true, true, 5 + M);
      expect(d.rel, `[${M},${K},${N}]`).toBeLessThanOrEqual(TOL_F16_STORAGE);
    }
  });

  it('transposed weights (the tied unembedding: x·Wᵀ, W [vocab, d])', async () => {
    for (const [M, K, N] of [[1, 4, 4], [7, 8, 12], [33, 384, 1004]] as const) {
      const x = random(M * K, M);
      const w = random(N * K, N, 0.2);
      const got = await checked(() => read(tf.tidy(() => matMulTransposed(tf.tensor2d(x, [M, K]), tf.tensor2d(w, [N, K])))));
      // The reference takes W as [K, N]: transpose it here.
      const wT = new Float32Array(K * N);
      for (let n = 0; n < N; n++) for (let k = 0; k < K; k++) wT[k * N + n] = w[n * K + k];
      expect(diff(got, matmulRef(x, wT, null, M, K, N)).rel, `[${M},${K},${N}]`).toBeLessThanOrEqual(TOL_F32);
    }
  });

  it('toHalf/fromHalf round to nearest even, with subnormals and overflow', () => {
    expect(fromHalf(toHalf(1))).toBe(1);
    expect(fromHalf(toHalf(65504))).toBe(65504);
    expect(fromHalf(toHalf(1e6))).toBe(Infinity);
    expect(fromHalf(toHalf(2 ** -24))).toBe(2 ** -24);
    expect(fromHalf(toHalf(1 + 2 ** -11))).toBe(1); // tie → even
    expect(fromHalf(toHalf(1 + 3 * 2 ** -11))).toBe(1 + 2 ** -9);
    expect(fromHalf(toHalf(-0.333251953125))).toBe(-0.333251953125);
  });
});
