/**
 * The lab against PyTorch: tools/reference/make_lab_fixtures.py patched the same
 * hooks with transformers forward hooks (lab.json); here PatchLab repeats every
 * experiment on the current tfjs backend. Shared by Node and Chromium tests.
 */
import { pathwayGrounding } from '../../lab/grounding.ts';
import { PatchLab } from '../../lab/sweep.ts';
import type { Metric, PositionMode, Source, SweepSpec } from '../../lab/spec.ts';
import { readRepoFile } from '../util/fixtures.ts';
import { MICRO_DIR, type Fixture } from './parity-core.ts';

interface RefResult {
  hook: string;
  position: number | null;
  position_end: number | null;
  head: number | null;
  value: number;
  effect: number;
}

export interface RefExperiment {
  id: string;
  direction: 'denoise' | 'noise';
  source: 'clean' | 'corrupt' | 'zero' | 'mean';
  metric: Metric;
  positions: 'each' | 'all' | { bins: number };
  heads: 'each' | 'all';
  results: RefResult[];
}

type RefPoint = { A: number; T: number; gc: number; ratio: number | null };

type RefLens = { layers: { layer: number; top: { token: number; prob: number }[]; targetProb: number; foilProb: number; logitDiff: number }[]; finalTop: number; saturationLayer: number | null; criticalLayer: number | null };

export interface LabReference {
  prefix: number[];
  target: number;
  foil: number;
  metrics: Record<Metric, { clean: number; corrupt: number }>;
  experiments: RefExperiment[];
  gc: { layers: (RefPoint & { layer: number })[]; overall: RefPoint };
  lens: Record<'clean' | 'corrupt', { logit: RefLens; encoder: RefLens }>;
  cka: Record<'encoder' | 'decoder', { labels: string[]; matrix: number[][]; positions: [number, number] }>;
  attribution: { patterns: string[]; entries: { hook: string; position: number; estimate: number }[] };
  per_token: { position: number; token: number; clean: number; corrupt: number; A: number; T: number; gc: number }[];
  input_gc: { cleanPrefix: number[]; corruptPrefix: number[]; target: number; foil: number; deltaAudio: number; deltaText: number; gc: number };
}

export async function loadLabReference(): Promise<LabReference> {
  const bytes = await readRepoFile(`${MICRO_DIR}/lab.json`);
  if (!bytes) throw new Error(`Missing ${MICRO_DIR}/lab.json; regenerate with tools/reference/make_lab_fixtures.py.`);
  return JSON.parse(new TextDecoder().decode(bytes));
}

export async function createLab(f: Fixture, ref: LabReference): Promise<PatchLab> {
  return PatchLab.create(f.loaded.model, {
    cleanMel: f.golden.getF32('logmel.clean'),
    corruptMel: f.golden.getF32('logmel.corrupt'),
    prefix: ref.prefix,
    target: ref.target,
    foil: ref.foil,
  });
}

export function toSweepSpec(e: RefExperiment): SweepSpec {
  const positions: PositionMode = e.positions === 'each' ? { kind: 'each' } : e.positions === 'all' ? { kind: 'all' } : { kind: 'bins', size: e.positions.bins };
  const source: Source = { kind: e.source };
  const hooks = [...new Set(e.results.map((r) => r.hook))];
  return { hooks, positions, heads: e.heads, direction: e.direction, source, metric: e.metric };
}

export interface ExperimentComparison {
  id: string;
  count: number;
  /** Largest |Δ value| and |Δ effect| over the experiment's results. */
  maxValueErr: number;
  maxEffectErr: number;
  /** Results whose labels disagreed (hook/position/head order): must be 0. */
  labelMismatches: number;
}

export async function compareExperiment(lab: PatchLab, e: RefExperiment): Promise<ExperimentComparison> {
  const r = await lab.sweep(toSweepSpec(e));
  let maxValueErr = r.results.length === e.results.length ? 0 : Infinity;
  let maxEffectErr = maxValueErr;
  let labelMismatches = 0;
  e.results.forEach((want, i) => {
    const got = r.results[i];
    if (!got || got.hook !== want.hook || got.position !== want.position || got.positionEnd !== want.position_end || got.head !== want.head) {
      labelMismatches++;
      return;
    }
    maxValueErr = Math.max(maxValueErr, Math.abs(got.value - want.value));
    maxEffectErr = Math.max(maxEffectErr, Math.abs(got.effect - want.effect));
  });
  return { id: e.id, count: e.results.length, maxValueErr, maxEffectErr, labelMismatches };
}

/** Pathway GC against the reference: largest difference over A, T, gc of every layer and overall. */
export async function compareGrounding(lab: PatchLab, ref: LabReference): Promise<number> {
  const g = await pathwayGrounding(lab);
  const pairs: [number, number][] = [];
  g.layers.forEach((l, i) => pairs.push([l.A, ref.gc.layers[i].A], [l.T, ref.gc.layers[i].T], [l.gc, ref.gc.layers[i].gc]));
  pairs.push([g.overall.A, ref.gc.overall.A], [g.overall.T, ref.gc.overall.T], [g.overall.gc, ref.gc.overall.gc]);
  return Math.max(...pairs.map(([a, b]) => Math.abs(a - b)));
}

/**
 * Tolerances: values are float32 model outputs (order 1) compared with PyTorch's, so
 * 1e-4 absolute; effects divide by clean − corrupt, so they get 1e-4 / |span|.
 */
export function tolerances(ref: LabReference, metric: Metric): { value: number; effect: number } {
  const span = Math.abs(ref.metrics[metric].clean - ref.metrics[metric].corrupt);
  return { value: 1e-4, effect: 1e-4 / span };
}
