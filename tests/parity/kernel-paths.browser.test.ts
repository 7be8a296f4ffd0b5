/**
 * The parity suite on WebGPU under both kernel paths in one run (models/ops.ts): our WGSL
 * kernels ('custom') and plain tfjs ops ('tfjs'). Same checks as parity.browser.test.ts
 * (every hook against transformers, corrupt-clip logits, greedy tokens with the
 * preallocated KV cache). The lab experiments on WebGPU are lab-parity.browser.test.ts, which
 * runs on the default path ('custom'); the whole suite under 'tfjs' is
 *   EARSHOT_KERNELS=tfjs VITE_EARSHOT_KERNELS=tfjs npx vitest run
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../models/backend.ts';
import { setKernelPath, type KernelPath } from '../../models/ops.ts';
import { compareCorruptLogits, compareHooks, greedyTokens, loadFixture, tolerance, type Fixture } from './parity-core.ts';

for (const path of ['custom', 'tfjs'] as KernelPath[]) {
  describe(`webgpu with ${path} kernels`, () => {
    let f: Fixture;
    beforeAll(async () => {
      await initBackend('webgpu');
      setKernelPath(path);
      f = await loadFixture();
    });
    afterAll(() => {
      f?.loaded.model.dispose();
      setKernelPath(null);
    });

    it('every hook point, the logits and greedy tokens match transformers', async () => {
      const results = await compareHooks(f);
      for (const r of results) expect(r.maxAbsErr, r.name).toBeLessThanOrEqual(tolerance(r));
      const c = await compareCorruptLogits(f);
      expect(c.maxAbsErr).toBeLessThanOrEqual(tolerance(c, 1e-3));
      const tokens = await greedyTokens(f);
      expect(tokens.clean).toEqual(f.meta.greedy.clean.tokens);
      expect(tokens.corrupt).toEqual(f.meta.greedy.corrupt.tokens);
    });
  });
}
