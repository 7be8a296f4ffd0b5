/**
 * A subset of the PyTorch lab reference on WebGPU (SwiftShader here) in Chromium:
 * per-token decoder patches, per-head patches, KL, the grounding coefficient, and
 * encoder time bins — the same checks as lab-parity.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../../models/backend.ts';
import type { PatchLab } from '../../lab/sweep.ts';
import { compareExperiment, compareGrounding, createLab, loadLabReference, tolerances, type LabReference } from './lab-core.ts';
import { loadFixture, type Fixture } from './parity-core.ts';

const SUBSET = ['E1', 'E3', 'E5', 'E7-kl-denoise', 'E8-mean'];

describe('lab vs PyTorch on webgpu in Chromium', () => {
  let ref: LabReference;
  let f: Fixture;
  let lab: PatchLab;
  beforeAll(async () => {
    await initBackend('webgpu');
    ref = await loadLabReference();
    f = await loadFixture();
    lab = await createLab(f, ref);
  });
  afterAll(() => {
    lab?.dispose();
    f?.loaded.model.dispose();
  });

  for (const id of SUBSET) {
    it(id, async () => {
      const e = ref.experiments.find((x) => x.id === id)!;
      const c = await compareExperiment(lab, e);
      const tol = tolerances(ref, e.metric);
      console.log(`[lab webgpu] ${id}: ${c.count} patches, max |Δvalue| ${c.maxValueErr.toExponential(2)}, max |Δeffect| ${c.maxEffectErr.toExponential(2)}`);
      expect(c.labelMismatches).toBe(0);
      expect(c.maxValueErr).toBeLessThan(tol.value);
      expect(c.maxEffectErr).toBeLessThan(tol.effect);
    });
  }

  it('pathway grounding coefficient', async () => {
    expect(await compareGrounding(lab, ref)).toBeLessThan(tolerances(ref, 'logit_diff').effect);
  });
});
