/**
 * Conv-stem kernel (conv1d width 3, pad 1, stride 1 or 2, bias, GELU, positions) against the
 * float64 loop, both input layouts, on Chromium's WebGPU; and the whole stem through
 * models/ops.ts against the tfjs-op path on a Whisper-tiny-sized window (80 mels × 3000).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { convStem, setKernelPath } from '../../models/ops.ts';
import { runProgram } from '../webgpu.ts';
import { TOL_F32, checked, diff, random, read } from '../testing.ts';
import { ConvStemProgram, convOutLength, type ConvLayout } from './conv-stem.wgsl.ts';
import { convStemRef } from './conv-stem.ref.ts';

describe('conv stem kernel (WebGPU) vs plain loops', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
    setKernelPath('custom');
  });

  const cases: [number, number, number, number, number, ConvLayout, boolean][] = [
    [1, 1, 1, 4, 1, 'channels-first', false],
    [1, 7, 7, 8, 2, 'channels-first', true],
    [2, 5, 13, 12, 1, 'channels-last', false],
    [1, 7, 8, 4, 2, 'channels-last', true],
    [1, 80, 3000, 16, 1, 'channels-first', false],
    [1, 64, 3000, 32, 2, 'channels-last', true],
  ];
  for (const [B, Cin, F, Cout, stride, layout, pos] of cases) {
    it(`B ${B} Cin ${Cin} F ${F} Cout ${Cout} stride ${stride} ${layout}${pos ? ' + positions' : ''}`, async () => {
      const x = random(B * Cin * F, F + Cin, 2);
      const w = random(3 * Cin * Cout, 2, 1 / Math.sqrt(3 * Cin));
      const b = random(Cout, 3, 0.1);
      const P = convOutLength(F, stride);
      const p = pos ? random(P * Cout, 4) : null;
      const xShape = layout === 'channels-first' ? [B, Cin, F] : [B, F, Cin];
      const got = await checked(() =>
        read(
          tf.tidy(() =>
            runProgram(
              new ConvStemProgram(B, Cin, F, Cout, stride, layout, pos),
              [tf.tensor(x, xShape), tf.tensor3d(w, [3, Cin, Cout]), tf.tensor1d(b), ...(p ? [tf.tensor2d(p, [P, Cout])] : [])],
              ConvStemProgram.uniforms(B, Cin, F, Cout, stride),
            ),
          ),
        ),
      );
      expect(diff(got, convStemRef(x, w, b, p, B, Cin, F, Cout, stride, layout)).rel).toBeLessThanOrEqual(TOL_F32);
    });
  }

  it('the whole stem equals the tfjs-op path (80 mels × 3000 frames → 1500 × 384)', async () => {
    const [nMels, F, d] = [80, 3000, 384];
    const weights = () => ({
      w1: tf.tensor3d(random(3 * nMels * d, 1, 0.1), [3, nMels, d]),
      b1: tf.tensor1d(random(d, 2, 0.1)),
      w2: tf.tensor3d(random(3 * d * d, 3, 0.03), [3, d, d]),
      b2: tf.tensor1d(random(d, 4, 0.1)),
      positions: tf.tensor2d(random((F / 2) * d, 5), [F / 2, d]),
    });
    const mel = random(nMels * F, 6);
    const ours = await checked(() => read(tf.tidy(() => convStem(tf.tensor3d(mel, [1, nMels, F]), weights()))));
    setKernelPath('tfjs');
    const theirs = await read(tf.tidy(() => convStem(tf.tensor3d(mel, [1, nMels, F]), weights())));
    setKernelPath('custom');
    expect(diff(ours, theirs).rel).toBeLessThanOrEqual(TOL_F32);
  });
});
