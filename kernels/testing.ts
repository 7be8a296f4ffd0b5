/**
 * Shared helpers for the kernel tests (Chromium's WebGPU on SwiftShader, or Dawn in Node).
 *
 * Tolerances, per weight dtype, as max |kernel − reference| ≤ tol · max(1, max |reference|):
 *  - f32 storage: 2e-5 — float32 accumulation over K ≤ 1536 terms of order-1 products
 *    against a float64 loop (measured worst here: ~3e-6 relative);
 *  - f16 storage (weights rounded to half, activations and arithmetic f32): the reference
 *    uses the same half-rounded weights, so the budget stays f32's, 2e-5; against the
 *    unrounded f32 weights the error is of order 2^-11·√K (~1e-2 relative for K = 384),
 *    which is what a checkpoint stored as f32 loses in f16 storage.
 */
import * as tf from '@tensorflow/tfjs-core';
import { seededRandom } from '../tests/util/reference-math.ts';
import { webgpuBackend } from './webgpu.ts';

export const TOL_F32 = 2e-5;
export const TOL_F16_STORAGE = 2e-5;

/** Deterministic uniform(−1, 1) values (tests/util/reference-math.ts's mulberry32), times `scale`. */
export function random(n: number, seed: number, scale = 1): Float32Array {
  const out = seededRandom(n, seed);
  if (scale !== 1) for (let i = 0; i < n; i++) out[i] *= scale;
  return out;
}

export interface Diff {
  maxAbs: number;
  scale: number;
  /** maxAbs / max(1, scale): what the tolerances bound. */
  rel: number;
}

export function diff(got: ArrayLike<number>, want: ArrayLike<number>): Diff {
  if (got.length !== want.length) return { maxAbs: Infinity, scale: 0, rel: Infinity };
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    // NaN must fail: compare with a negated test.
    if (!(e <= maxAbs)) maxAbs = Number.isNaN(e) ? Infinity : e;
    scale = Math.max(scale, Math.abs(want[i]));
  }
  return { maxAbs, scale, rel: maxAbs / Math.max(1, scale) };
}

/** Reads a tensor and disposes it. */
export async function read(t: tf.Tensor): Promise<Float32Array> {
  const d = (await t.data()) as Float32Array;
  t.dispose();
  return d;
}

/**
 * Runs `fn` inside a WebGPU validation error scope and throws the first validation error
 * (a WGSL compile error otherwise surfaces only as zeros in the output).
 */
export async function checked<T>(fn: () => Promise<T>): Promise<T> {
  const device = (webgpuBackend() as unknown as { device: GPUDevice } | null)?.device;
  if (!device) return fn();
  device.pushErrorScope('validation');
  const out = await fn();
  const err = await device.popErrorScope();
  if (err) throw new Error(`WebGPU validation error: ${err.message}`);
  return out;
}
