/**
 * Node smoke test: cpu, wasm and (via Dawn + SwiftShader) webgpu backends run a
 * matmul and a softmax that match plain-loop references.
 */
import { afterAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from '../../models/backend.ts';
import { installNodeWebGPU, nodeWebGPUError } from '../../tools/node-webgpu.ts';
import { matmulRef, maxAbsDiff, seededRandom, softmaxRef } from '../util/reference-math.ts';

const M = 64;
const K = 32;
const N = 48;
const a = seededRandom(M * K, 1);
const b = seededRandom(K * N, 2);
const logits = seededRandom(M * N, 3).map((v) => v * 8);
const mmRef = matmulRef(a, b, M, K, N);
const smRef = softmaxRef(logits, M, N);

async function checkBackend(name: BackendName): Promise<void> {
  const info = await initBackend(name);
  expect(info.name).toBe(name);
  expect(tf.getBackend()).toBe(name);
  console.log(`[smoke] ${name}:`, JSON.stringify(info));

  const before = tf.memory().numTensors;
  const mm = tf.tidy(() => tf.matMul(tf.tensor2d(a, [M, K]), tf.tensor2d(b, [K, N])));
  const sm = tf.tidy(() => tf.softmax(tf.tensor2d(logits, [M, N])));
  const [mmOut, smOut] = await Promise.all([mm.data(), sm.data()]);
  mm.dispose();
  sm.dispose();
  expect(tf.memory().numTensors).toBe(before);

  const mmErr = maxAbsDiff(mmOut, mmRef);
  const smErr = maxAbsDiff(smOut, smRef);
  console.log(`[smoke] ${name}: matmul max|diff| ${mmErr.toExponential(2)}, softmax max|diff| ${smErr.toExponential(2)}`);
  expect(mmErr).toBeLessThan(1e-4);
  expect(smErr).toBeLessThan(1e-6);
}

describe('tfjs backends in Node', () => {
  afterAll(async () => {
    await initBackend('cpu');
  });

  it('cpu: matmul + softmax match JS loops', async () => {
    await checkBackend('cpu');
  });

  it('wasm: matmul + softmax match JS loops (wasm binaries found automatically)', async () => {
    await checkBackend('wasm');
  });

  it('webgpu (Dawn/SwiftShader): matmul + softmax match JS loops', async (ctx) => {
    const ok = await installNodeWebGPU();
    if (!ok) {
      console.warn(`[smoke] webgpu in Node unavailable: ${nodeWebGPUError()}`);
      ctx.skip(`webgpu in Node unavailable: ${nodeWebGPUError()}`);
      return;
    }
    await checkBackend('webgpu');
  });
});
