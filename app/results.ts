/**
 * One experiment's results as the lab computed them (every number here comes from lab/
 * through the worker), and their export as JSON and CSV.
 */
import type { AttributionResult } from '../lab/attribution.ts';
import type { PathwayGrounding, TokenGrounding } from '../lab/grounding.ts';
import type { LensResult } from '../lab/lens.ts';
import type { PatchResult, SweepResult } from '../lab/sweep.ts';
import type { AttentionReport, LabReport } from '../workers/protocol.ts';
import type { Settings } from './experiment.ts';

export interface ExperimentResults {
  /** What was run: model, backend, clips, target/foil, settings. */
  model: { label: string; randomWeights: boolean };
  backend: string;
  clips: { clean: string; corrupt: string; seconds: [number, number] };
  lab: LabReport;
  /** Tokens of the clean transcript, for listen-vs-guess labels. */
  transcript: { tokens: number[]; pieces: (string | null)[] };
  settings: Settings;
  encoderPositions: number;
  /** Layer × time-bin sweep (and decoder tokens). */
  bins: SweepResult | null;
  /** Whole-layer sweep (every clip position at once). */
  layers: SweepResult | null;
  grounding: PathwayGrounding | null;
  listen: TokenGrounding[] | null;
  lens: { logit: LensResult; encoder: LensResult } | null;
  attention: AttentionReport | null;
  attribution: AttributionResult | null;
  finishedAt: number;
  /** True when the run was cancelled or failed part-way: what is here is partial. */
  partial: boolean;
  /** The page was closed or reloaded while this run was going (restored from IndexedDB). */
  interrupted?: boolean;
  /** Sweep results streamed before the first sweep finished (saved while a run goes). */
  streamed?: PatchResult[];
}

/** JSON with NaN/±Infinity as strings (so nothing silently becomes null) and float32 buffers as arrays. */
export function resultsJson(r: ExperimentResults): string {
  return JSON.stringify(
    r,
    (_k, v) => {
      if (typeof v === 'number' && !Number.isFinite(v)) return String(v);
      if (v instanceof ArrayBuffer) return Array.from(new Float32Array(v));
      return v;
    },
    2,
  );
}

const csvField = (v: unknown) => {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
};

/** Every patch of both sweeps, one row each (the other results are in the JSON). */
export function resultsCsv(r: ExperimentResults): string {
  const rows: unknown[][] = [['sweep', 'hook', 'position', 'position_end', 'head', 'metric', 'value', 'effect', 'direction', 'clean', 'corrupt']];
  for (const [name, s] of [['bins', r.bins], ['layers', r.layers]] as const) {
    if (!s) continue;
    for (const x of s.results) rows.push([name, x.hook, x.position, x.positionEnd, x.head, s.metric, x.value, x.effect, s.direction, s.clean, s.corrupt]);
  }
  return rows.map((row) => row.map(csvField).join(',')).join('\n') + '\n';
}
