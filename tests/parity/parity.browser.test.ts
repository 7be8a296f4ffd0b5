/**
 * Parity with Hugging Face transformers in headless Chromium: webgpu (on the
 * SwiftShader fallback adapter here) and the browser's wasm backend. Same checks
 * as parity.test.ts, through the same parity-core.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from '../../models/backend.ts';
import { compareCorruptLogits, compareHooks, compareLogMel, greedyTokens, loadFixture, tolerance, type Fixture } from './parity-core.ts';

for (const backend of ['webgpu', 'wasm'] as BackendName[]) {
  describe(`parity with transformers on ${backend} in Chromium`, () => {
    let f: Fixture;
    beforeAll(async () => {
      const info = await initBackend(backend);
      console.log(`[parity] ${backend}: ${info.reason ?? ''}`);
      f = await loadFixture();
    });
    afterAll(() => f?.loaded.model.dispose());

    it('log-mel matches the feature extractor', () => {
      const c = compareLogMel(f);
      expect(c.maxAbsErr).toBeLessThan(1e-4);
    });

    it('every hook point and the logits match', async () => {
      const results = await compareHooks(f);
      expect(results.map((r) => r.name).slice(0, -1)).toEqual(f.meta.hooks);
      const worst = results.reduce((a, b) => (b.maxAbsErr / tolerance(b) > a.maxAbsErr / tolerance(a) ? b : a));
      console.log(`[parity] ${backend} worst: ${worst.name} err=${worst.maxAbsErr.toExponential(2)} scale=${worst.scale.toFixed(2)}`);
      for (const r of results) {
        expect(r.shapeOk, r.name).toBe(true);
        expect(r.maxAbsErr, r.name).toBeLessThanOrEqual(tolerance(r));
      }
    });

    it('logits on the corrupt clip and greedy tokens match', async () => {
      const c = await compareCorruptLogits(f);
      expect(c.maxAbsErr).toBeLessThanOrEqual(tolerance(c, 1e-3));
      const tokens = await greedyTokens(f);
      expect(tokens.clean).toEqual(f.meta.greedy.clean.tokens);
      expect(tokens.corrupt).toEqual(f.meta.greedy.corrupt.tokens);
    });
  });
}
