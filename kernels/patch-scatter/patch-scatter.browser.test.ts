/**
 * Patch scatter against the plain loop and the tfjs mask path, on Chromium's WebGPU: hooks
 * without heads ([pos, d]), with heads after positions ([pos, head, dh]) and before them
 * (patterns [head, q, k]); value and source with one row or B rows; zero ablation.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { patchScatter, setKernelPath, type PatchAxes, type ScatterRow } from '../../models/ops.ts';
import { checked, random, read } from '../testing.ts';
import { patchScatterRef } from './patch-scatter.ref.ts';

interface Case {
  name: string;
  shape: number[];
  axes: PatchAxes;
  B: number;
  Bv: number;
  Bs: number | null;
  rows: ScatterRow[];
}

const CASES: Case[] = [
  { name: 'resid [pos, d], one position per variant', shape: [7, 5], axes: { posAxis: 0, headAxis: null }, B: 7, Bv: 1, Bs: 1, rows: Array.from({ length: 7 }, (_, i) => ({ row: i, positions: [i], heads: null })) },
  { name: 'z [pos, head, dh], one head per variant, all positions', shape: [4, 3, 4], axes: { posAxis: 0, headAxis: 1 }, B: 3, Bv: 1, Bs: 1, rows: [0, 1, 2].map((h) => ({ row: h, positions: null, heads: [h] })) },
  { name: 'pattern [head, q, k], positions × heads, value already batched', shape: [2, 3, 3], axes: { posAxis: 1, headAxis: 0 }, B: 2, Bv: 2, Bs: 1, rows: [{ row: 1, positions: [0, 2], heads: [1] }] },
  { name: 'zero ablation of a bin', shape: [10, 4], axes: { posAxis: 0, headAxis: null }, B: 2, Bv: 1, Bs: null, rows: [{ row: 0, positions: [2, 3, 4], heads: null }] },
  { name: 'source with B rows, one variant untouched', shape: [1500, 8], axes: { posAxis: 0, headAxis: null }, B: 3, Bv: 1, Bs: 3, rows: [{ row: 0, positions: [0], heads: null }, { row: 2, positions: [1499], heads: null }] },
  { name: 'single element', shape: [1], axes: { posAxis: 0, headAxis: null }, B: 1, Bv: 1, Bs: 1, rows: [{ row: 0, positions: null, heads: null }] },
];

describe('patch scatter kernel (WebGPU) vs plain loops and the tfjs mask path', () => {
  beforeAll(async () => {
    await initBackend('webgpu');
  });

  for (const c of CASES) {
    it(c.name, async () => {
      const rowSize = c.shape.reduce((a, b) => a * b, 1);
      const value = random(c.Bv * rowSize, 1);
      const source = c.Bs === null ? null : random(c.Bs * rowSize, 2);
      const run = () =>
        read(tf.tidy(() => patchScatter(tf.tensor(value, [c.Bv, ...c.shape]), source ? tf.tensor(source, [c.Bs!, ...c.shape]) : null, c.B, c.rows, c.axes)));
      setKernelPath('custom');
      const ours = await checked(run);
      setKernelPath('tfjs');
      const masked = await run();
      setKernelPath('custom');
      // Build the reference's selection table the same way the op documents it.
      const nPos = c.shape[c.axes.posAxis];
      const nHead = c.axes.headAxis === null ? 1 : c.shape[c.axes.headAxis];
      const sel = new Int32Array(c.B * (nPos + nHead));
      for (const r of c.rows) {
        for (const p of r.positions ?? Array.from({ length: nPos }, (_, i) => i)) sel[r.row * (nPos + nHead) + p] = 1;
        for (const h of r.heads ?? Array.from({ length: nHead }, (_, i) => i)) sel[r.row * (nPos + nHead) + nPos + h] = 1;
      }
      const stride = (axis: number) => c.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
      const want = patchScatterRef(value, source, sel, {
        B: c.B,
        Bv: c.Bv,
        Bs: c.Bs ?? 1,
        rowSize,
        posStride: stride(c.axes.posAxis),
        nPos,
        headStride: c.axes.headAxis === null ? rowSize : stride(c.axes.headAxis),
        nHead,
      });
      // Copies, not arithmetic: exact equality.
      expect(Array.from(ours)).toEqual(Array.from(want));
      expect(Array.from(masked)).toEqual(Array.from(want));
    });
  }
});
