/**
 * Every lab experiment of tools/reference/make_lab_fixtures.py (PyTorch forward hooks)
 * reproduced by PatchLab on the tfjs cpu and wasm backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from '../../models/backend.ts';
import type { PatchLab } from '../../lab/sweep.ts';
import type { Metric } from '../../lab/spec.ts';
import { compareExperiment, compareGrounding, createLab, loadLabReference, tolerances, type LabReference } from './lab-core.ts';
import { loadFixture, type Fixture } from './parity-core.ts';

const ref: LabReference = await loadLabReference();

for (const backend of ['cpu', 'wasm'] as BackendName[]) {
  describe(`lab vs PyTorch on ${backend}`, () => {
    let f: Fixture;
    let lab: PatchLab;
    beforeAll(async () => {
      await initBackend(backend);
      f = await loadFixture();
      lab = await createLab(f, ref);
    });
    afterAll(() => {
      lab?.dispose();
      f?.loaded.model.dispose();
    });

    it('unpatched metrics match', () => {
      for (const [metric, v] of Object.entries(ref.metrics) as [Metric, { clean: number; corrupt: number }][]) {
        // Log-probs sum over the 51865-token vocabulary in float32: 2e-4 absolute.
        expect(Math.abs(lab.baseMetric('clean', metric) - v.clean), metric).toBeLessThan(2e-4);
        expect(Math.abs(lab.baseMetric('corrupt', metric) - v.corrupt), metric).toBeLessThan(2e-4);
      }
    });

    for (const e of ref.experiments) {
      it(`${e.id}: ${e.direction}, ${e.metric}, source ${e.source}, ${e.results.length} patches`, async () => {
        const c = await compareExperiment(lab, e);
        const tol = tolerances(ref, e.metric);
        expect(c.labelMismatches).toBe(0);
        expect(c.maxValueErr).toBeLessThan(tol.value);
        expect(c.maxEffectErr).toBeLessThan(tol.effect);
      });
    }

    it('pathway grounding coefficient matches', async () => {
      expect(await compareGrounding(lab, ref)).toBeLessThan(tolerances(ref, 'logit_diff').effect);
    });
  });
}
