/**
 * Every lab experiment of tools/reference/make_lab_fixtures.py (PyTorch forward hooks)
 * reproduced by PatchLab on the tfjs cpu and wasm backends.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from '../../models/backend.ts';
import type { PatchLab } from '../../lab/sweep.ts';
import { attributionPatching } from '../../lab/attribution.ts';
import { layerCka } from '../../lab/cka.ts';
import { inputGrounding, listenVsGuess } from '../../lab/grounding.ts';
import { encoderLens, logitLens } from '../../lab/lens.ts';
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

    it('logit lens and encoder lens match, with saturation and critical layers', async () => {
      const opts = { target: ref.target, foil: ref.foil };
      for (const run of ['clean', 'corrupt'] as const) {
        const got = { logit: await logitLens(f.loaded.model, lab.runs[run], opts), encoder: await encoderLens(f.loaded.model, lab.runs[run], opts) };
        for (const kind of ['logit', 'encoder'] as const) {
          const want = ref.lens[run][kind];
          const mine = got[kind];
          expect(mine.finalTop).toBe(want.finalTop);
          expect(mine.saturationLayer).toBe(want.saturationLayer);
          expect(mine.criticalLayer!).toBeCloseTo(want.criticalLayer!, 3);
          mine.layers.forEach((l, i) => {
            const w = want.layers[i];
            expect(l.top.map((t) => t.token), `${run} ${kind} layer ${l.layer}`).toEqual(w.top.map((t) => t.token));
            l.top.forEach((t, k) => expect(Math.abs(t.prob - w.top[k].prob)).toBeLessThan(1e-4));
            expect(Math.abs(l.targetProb - w.targetProb)).toBeLessThan(1e-4);
            expect(Math.abs(l.logitDiff - w.logitDiff)).toBeLessThan(1e-4);
          });
        }
      }
    });

    it('layer CKA matches', async () => {
      for (const stack of ['encoder', 'decoder'] as const) {
        const want = ref.cka[stack];
        const got = await layerCka(f.loaded.model, lab.runs.clean, stack, want.positions);
        expect(got.labels).toEqual(want.labels);
        got.matrix.forEach((row, i) => row.forEach((v, j) => expect(Math.abs(v - want.matrix[i][j]), `${stack} ${i},${j}`).toBeLessThan(1e-4)));
      }
    });

    it('attribution-patching estimates match torch autograd', async () => {
      const r = await attributionPatching(lab, ref.attribution.patterns, { topK: 5 });
      expect(r.entries.map((e) => [e.hook, e.position])).toEqual(ref.attribution.entries.map((e) => [e.hook, e.position]));
      const err = Math.max(...r.entries.map((e, i) => Math.abs(e.estimate - ref.attribution.entries[i].estimate)));
      expect(err).toBeLessThan(tolerances(ref, 'logit_diff').effect);
    });

    it('listen vs guess per token and the input grounding coefficient match', async () => {
      const transcript = ref.per_token.map((t) => t.token);
      const per = await listenVsGuess(f.loaded.model, lab.inputs.cleanMel, lab.inputs.corruptMel, ref.prefix, transcript);
      per.forEach((p, i) => {
        const w = ref.per_token[i];
        expect(p.position).toBe(w.position);
        expect(Math.abs(p.clean - w.clean)).toBeLessThan(2e-4);
        // Effects divide by the clean − corrupt log-prob gap, as small as 0.003 here.
        const tol = 2e-5 / Math.abs(w.clean - w.corrupt);
        expect(Math.abs(p.A - w.A), `A at ${p.position}`).toBeLessThan(tol);
        expect(Math.abs(p.T - w.T), `T at ${p.position}`).toBeLessThan(tol);
      });
      const g = ref.input_gc;
      const mine = await inputGrounding(f.loaded.model, { cleanMel: lab.inputs.cleanMel, corruptMel: lab.inputs.corruptMel, cleanPrefix: g.cleanPrefix, corruptPrefix: g.corruptPrefix, target: g.target, foil: g.foil });
      expect(Math.abs(mine.deltaAudio - g.deltaAudio)).toBeLessThan(2e-4);
      expect(Math.abs(mine.deltaText - g.deltaText)).toBeLessThan(2e-4);
      expect(Math.abs(mine.gc - g.gc)).toBeLessThan(2e-4);
    });
  });
}
