/**
 * The benchmark's workloads, shared by the Node runner and the Chromium page: the same code
 * times our engine (either kernel path), onnxruntime-web and the matmul peak on whatever
 * backend is current. Medians of `reps` runs after `warmup` runs; FLOPs counted analytically.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from '../../models/config.ts';
import { linear, linearWeight, setKernelPath, type KernelPath } from '../../models/ops.ts';
import type { Whisper } from '../../models/whisper.ts';
import { PatchLab } from '../../lab/sweep.ts';
import type { SweepSpec } from '../../lab/spec.ts';

/** Decoder prefix for the teacher-forced pass (tokens). */
export const DECODER_TOKENS = 32;

export interface Timing {
  /** Median wall time of the timed runs, ms. */
  ms: number;
  runs: number[];
  warmup: number;
}

export interface Measurement extends Timing {
  workload: string;
  engine: string;
  backend: string;
  gflop: number;
  gflops: number;
  /** Peak tensor bytes of one run (tfjs engines; null where not measurable). */
  peakBytes: number | null;
  note?: string;
}

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function timeIt(fn: () => Promise<void>, warmup: number, reps: number, log?: (msg: string) => void): Promise<Timing> {
  for (let i = 0; i < warmup; i++) await fn();
  const runs: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    runs.push(performance.now() - t0);
    log?.(`  run ${i + 1}/${reps}: ${runs[i].toFixed(0)} ms`);
  }
  return { ms: median(runs), runs, warmup };
}

// ───────────────────────────── FLOPs ─────────────────────────────

/** Multiply-adds ×2 of one encoder forward (conv stem, blocks; LayerNorm/softmax/GELU not counted). */
export function encoderFlops(c: WhisperConfig): number {
  const d = c.dModel;
  const F = 2 * c.maxSourcePositions;
  const T = c.maxSourcePositions;
  const conv = 2 * F * c.numMelBins * 3 * d + 2 * T * d * 3 * d;
  const block = 4 * 2 * T * d * d + 2 * 2 * T * d * c.encoderFfnDim + 2 * 2 * T * T * d;
  return conv + c.encoderLayers * block;
}

/** One encoder block (for sweep accounting). */
export function encoderBlockFlops(c: WhisperConfig): number {
  const d = c.dModel;
  const T = c.maxSourcePositions;
  return 4 * 2 * T * d * d + 2 * 2 * T * d * c.encoderFfnDim + 2 * 2 * T * T * d;
}

/** Cross K/V of every decoder block plus a teacher-forced pass over P tokens with full logits. */
export function decoderFlops(c: WhisperConfig, P: number): number {
  const d = c.dModel;
  const S = c.maxSourcePositions;
  const crossKV = c.decoderLayers * 2 * 2 * S * d * d;
  const block = 4 * 2 * P * d * d + 2 * 2 * P * P * d + 2 * 2 * P * d * d + 2 * 2 * P * S * d + 2 * 2 * P * d * c.decoderFfnDim;
  return crossKV + c.decoderLayers * block + 2 * P * d * c.vocabSize;
}

// ───────────────────────────── our engine ─────────────────────────────

export interface EngineInputs {
  model: Whisper;
  mel: Float32Array;
  tokens: number[];
}

async function peakOf(fn: () => Promise<void>): Promise<number | null> {
  try {
    const info = await tf.profile(fn);
    return info.peakBytes;
  } catch {
    return null;
  }
}

export async function benchEncoder(e: EngineInputs, path: KernelPath, warmup: number, reps: number, log?: (m: string) => void): Promise<Omit<Measurement, 'engine' | 'backend'>> {
  setKernelPath(path);
  const c = e.model.config;
  const mel = tf.tensor3d(e.mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
  const run = async () => {
    const out = e.model.encode(mel);
    await out.data();
    out.dispose();
  };
  const t = await timeIt(run, warmup, reps, log);
  const peakBytes = await peakOf(run);
  mel.dispose();
  const gflop = encoderFlops(c) / 1e9;
  return { workload: 'encoder forward', ...t, gflop, gflops: gflop / (t.ms / 1000), peakBytes };
}

export async function benchDecoder(e: EngineInputs, path: KernelPath, warmup: number, reps: number, log?: (m: string) => void): Promise<Omit<Measurement, 'engine' | 'backend'>> {
  setKernelPath(path);
  const c = e.model.config;
  const mel = tf.tensor3d(e.mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
  const encoderOut = e.model.encode(mel);
  const tokens = tf.tensor2d([e.tokens], [1, e.tokens.length], 'int32');
  const run = async () => {
    const cross = e.model.crossKV(encoderOut);
    const { logits, present } = e.model.decode(tokens, cross);
    await logits.data();
    tf.dispose([logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  };
  const t = await timeIt(run, warmup, reps, log);
  const peakBytes = await peakOf(run);
  tf.dispose([mel, encoderOut, tokens]);
  const gflop = decoderFlops(c, e.tokens.length) / 1e9;
  return { workload: `decoder pass (${e.tokens.length} tokens, cross K/V incl.)`, ...t, gflop, gflops: gflop / (t.ms / 1000), peakBytes };
}

/** The sweep: encoder residual stream of the last block in 5 time bins, and every decoder block's cross-attention output per token. */
export function sweepSpec(c: WhisperConfig): SweepSpec {
  return {
    hooks: [`encoder.blocks.${c.encoderLayers - 1}.hook_resid_pre`, 'decoder.blocks.*.hook_cross_attn_out'],
    positions: { kind: 'bins', size: Math.ceil(c.maxSourcePositions / 5) },
    heads: 'all',
    direction: 'denoise',
    source: { kind: 'clean' },
    metric: 'logit_diff',
  };
}

export interface SweepMeasurement extends Omit<Measurement, 'engine' | 'backend'> {
  variants: number;
  blockEvals: number;
  naiveBlockEvals: number;
}

export async function benchSweep(
  e: EngineInputs & { corruptMel: Float32Array },
  path: KernelPath,
  warmup: number,
  reps: number,
  log?: (m: string) => void,
): Promise<SweepMeasurement> {
  setKernelPath(path);
  const c = e.model.config;
  const prefix = e.tokens.slice(0, 4);
  // Target and foil (not timed): the clean and corrupt runs' top tokens (the corrupt run's second if equal).
  const probe = await PatchLab.create(e.model, { cleanMel: e.mel, corruptMel: e.corruptMel, prefix, target: 0, foil: 1 });
  const ranked = async (t: tf.Tensor) => Array.from(await t.data()).map((v, i) => [v, i]).sort((x, y) => y[0] - x[0]).map((p) => p[1]);
  const clean = await ranked(probe.runs.clean.lastLogits);
  const corrupt = await ranked(probe.runs.corrupt.lastLogits);
  probe.dispose();
  const target = clean[0];
  const foil = corrupt[0] !== target ? corrupt[0] : corrupt[1];
  let cost = { variants: 0, blockEvals: 0, naiveBlockEvals: 0 };
  const run = async () => {
    const lab = await PatchLab.create(e.model, { cleanMel: e.mel, corruptMel: e.corruptMel, prefix, target, foil });
    const base = lab.counter.blockEvals; // the clean and corrupt runs
    const r = await lab.sweep(sweepSpec(c));
    lab.dispose();
    cost = { variants: r.cost.variants, blockEvals: base + r.cost.blockEvals, naiveBlockEvals: base + r.cost.naiveBlockEvals };
  };
  const t = await timeIt(run, warmup, reps, log);
  return { workload: 'patching sweep (base runs + variants)', ...t, gflop: NaN, gflops: NaN, peakBytes: null, ...cost };
}

// ───────────────────────────── matmul peak ─────────────────────────────

/** Best of our linear kernel and tfjs matMul on [1500, 384] × [384, 1536] (the encoder's fc1) on the current backend. */
export async function benchMatmulPeak(warmup: number, reps: number): Promise<{ ours: number | null; tfjs: number; shape: number[] }> {
  const [M, K, N] = [1500, 384, 1536];
  const a = tf.randomNormal([M, K]) as tf.Tensor2D;
  const b = tf.randomNormal([K, N]) as tf.Tensor2D;
  const flops = 2 * M * K * N;
  const runTfjs = async () => {
    const y = tf.matMul(a, b);
    await y.data();
    y.dispose();
  };
  const tfjsT = await timeIt(runTfjs, warmup, reps);
  let ours: number | null = null;
  if (tf.getBackend() === 'webgpu') {
    setKernelPath('custom');
    const W = linearWeight(b);
    const x = tf.reshape(a, [1, M, K]) as tf.Tensor3D;
    const runOurs = async () => {
      const y = linear(x, W, null);
      await y.data();
      y.dispose();
    };
    ours = flops / 1e9 / ((await timeIt(runOurs, warmup, reps)).ms / 1000);
    x.dispose();
    if (W.f16) W.f16.dispose();
  }
  tf.dispose([a, b]);
  return { ours, tfjs: flops / 1e9 / (tfjsT.ms / 1000), shape: [M, K, N] };
}

// ───────────────────────────── onnxruntime-web ─────────────────────────────

/** The parts of onnxruntime-web's API used here (typed loosely: the Node and browser builds differ). */
export interface OrtLike {
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => unknown;
  InferenceSession: { create(model: Uint8Array, opts: Record<string, unknown>): Promise<OrtSession> };
}
export interface OrtSession {
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown; dims: readonly number[] }>>;
  release?(): Promise<void>;
}

export async function benchOrtEncoder(ort: OrtLike, session: OrtSession, c: WhisperConfig, mel: Float32Array, warmup: number, reps: number, log?: (m: string) => void) {
  const input = new ort.Tensor('float32', mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
  const t = await timeIt(
    async () => {
      await session.run({ input_features: input });
    },
    warmup,
    reps,
    log,
  );
  const gflop = encoderFlops(c) / 1e9;
  return { workload: 'encoder forward', ...t, gflop, gflops: gflop / (t.ms / 1000), peakBytes: null };
}

export async function benchOrtDecoder(ort: OrtLike, session: OrtSession, c: WhisperConfig, hidden: Float32Array, tokens: number[], warmup: number, reps: number, log?: (m: string) => void) {
  const ids = new ort.Tensor('int64', BigInt64Array.from(tokens.map((t) => BigInt(t))), [1, tokens.length]);
  const h = new ort.Tensor('float32', hidden, [1, c.maxSourcePositions, c.dModel]);
  const t = await timeIt(
    async () => {
      await session.run({ input_ids: ids, encoder_hidden_states: h });
    },
    warmup,
    reps,
    log,
  );
  const gflop = decoderFlops(c, tokens.length) / 1e9;
  return { workload: `decoder pass (${tokens.length} tokens, cross K/V incl.)`, ...t, gflop, gflops: gflop / (t.ms / 1000), peakBytes: null };
}

/** Decoder prefix: the transcription prompt followed by ordinary token ids. */
export function benchTokens(c: WhisperConfig): number[] {
  const prompt = c.vocabSize > 51864 ? [50258, 50259, 50359, 50363] : [50257, 50362];
  const out = [...prompt];
  for (let i = 0; out.length < DECODER_TOKENS; i++) out.push((i * 7919 + 220) % 50000);
  return out;
}
