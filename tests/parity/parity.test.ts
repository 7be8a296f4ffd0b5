/**
 * Parity with Hugging Face transformers on the committed micro model, on the
 * tfjs cpu and wasm backends in Node (webgpu: parity.browser.test.ts).
 *
 * Other models made by tools/reference/make_fixtures.py can be checked the same way:
 *   EARSHOT_PARITY_DIRS=/tmp/alt,/tmp/other npx vitest run --project node tests/parity
 */
import { relative, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from '../../models/backend.ts';
import { repoPath } from '../util/fixtures.ts';
import { MICRO_DIR, compareCorruptLogits, compareHooks, compareUnhookedLogits, compareLogMel, greedyTokens, loadFixture, tolerance, type Fixture } from './parity-core.ts';

const root = await repoPath('.');
const extraDirs = (process.env.EARSHOT_PARITY_DIRS ?? '').split(',').filter((d) => d !== '').map((d) => relative(root, resolve(d)));

for (const [backend, dir] of (['cpu', 'wasm'] as BackendName[]).flatMap((b) => [MICRO_DIR, ...extraDirs].map((d) => [b, d] as const))) {
  describe(`parity with transformers on ${backend} (${dir})`, () => {
    let f: Fixture;
    beforeAll(async () => {
      await initBackend(backend);
      f = await loadFixture(dir);
    });
    afterAll(() => f?.loaded.model.dispose());

    it('log-mel matches the feature extractor', () => {
      for (const which of ['clean', 'corrupt'] as const) {
        const c = compareLogMel(f, which);
        expect(c.shapeOk).toBe(true);
        expect(c.maxAbsErr, c.name).toBeLessThan(1e-4);
      }
    });

    it('every hook point and the logits match', async () => {
      const results = await compareHooks(f);
      expect(results.map((r) => r.name).slice(0, -1)).toEqual(f.meta.hooks);
      const worst = results.map((r) => ({ ...r, ratio: r.maxAbsErr / tolerance(r) })).sort((a, b) => b.ratio - a.ratio);
      console.log(`[${backend}] worst hooks:`, worst.slice(0, 3).map((r) => `${r.name} err=${r.maxAbsErr.toExponential(2)} scale=${r.scale.toFixed(2)}`).join('; '));
      for (const r of results) {
        expect(r.shapeOk, r.name).toBe(true);
        expect(r.maxAbsErr, r.name).toBeLessThanOrEqual(tolerance(r));
      }
    });

    it('logits with nothing hooked match (the unhooked fast paths)', async () => {
      const c = await compareUnhookedLogits(f);
      expect(c.shapeOk).toBe(true);
      expect(c.maxAbsErr).toBeLessThanOrEqual(tolerance(c));
    });

    it('logits on the corrupt clip match through our own front end', async () => {
      const c = await compareCorruptLogits(f);
      expect(c.maxAbsErr).toBeLessThanOrEqual(tolerance(c, 1e-3));
    });

    it('greedy tokens match for both clips', async () => {
      const tokens = await greedyTokens(f);
      expect(tokens.clean).toEqual(f.meta.greedy.clean.tokens);
      expect(tokens.corrupt).toEqual(f.meta.greedy.corrupt.tokens);
    });
  });
}
