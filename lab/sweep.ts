/**
 * Activation-patching sweeps made cheap (DESIGN.md §5): clean and corrupted runs
 * once; each patched variant recomputes only from the block its earliest patch can
 * change; decoder-only patches reuse the encoder output and cross-attention K/V;
 * variants stack on the batch axis, in batches planned from a memory budget.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from '../models/config.ts';
import { EarshotError } from '../models/errors.ts';
import { HookSession } from '../models/hook-session.ts';
import { expandHookPatterns, parseHookName } from '../models/hooks.ts';
import type { Whisper } from '../models/whisper.ts';
import { effectOf, metricOf, type MetricContext } from './metrics.ts';
import { buildReplacements, hookExtent, neededValues } from './patch.ts';
import { createRun, disposeRun, ensureHooks, type BaseRun, type Counter } from './runs.ts';
import { baseRun, METRICS, type Direction, type Metric, type PatchSpec, type RunName, type SweepSpec, type Variant, type VariantLabel } from './spec.ts';

export interface PatchResult extends VariantLabel {
  /** The metric after the patch. */
  value: number;
  /** Normalised effect (DESIGN.md §4). */
  effect: number;
}

export interface SweepCost {
  variants: number;
  batches: number;
  /** Transformer blocks evaluated (× batch rows), base runs included. */
  blockEvals: number;
  /** What one full forward per variant would cost (plus the two base runs). */
  naiveBlockEvals: number;
}

export interface SweepResult {
  direction: Direction;
  metric: Metric;
  clean: number;
  corrupt: number;
  results: PatchResult[];
  cost: SweepCost;
}

export interface Progress {
  done: number;
  total: number;
  stage: string;
}

export interface RunOptions {
  onProgress?: (p: Progress) => void;
  /** Partial results as batches finish (for streaming charts). */
  onResults?: (results: PatchResult[]) => void;
  signal?: AbortSignal;
  /** Device memory a batch may use, in bytes (default 256 MB). */
  memoryBudget?: number;
  /** Upper bound on variants per batch (default 64). */
  maxBatch?: number;
}

export interface LabInputs {
  /** Log-mel [n_mels × frames] of each clip. */
  cleanMel: Float32Array;
  corruptMel: Float32Array;
  prefix: number[];
  target: number;
  foil: number;
}

/**
 * Clean and corrupted runs of one minimal pair on one model, ready for patching.
 * Create once per pair/prefix; run any number of sweeps; dispose.
 */
export class PatchLab {
  readonly model: Whisper;
  readonly inputs: LabInputs;
  readonly runs: Record<RunName, BaseRun>;
  /** Base-run block evaluations so far (the first two full passes, and cache top-ups). */
  readonly counter: Counter = { blockEvals: 0 };
  readonly #metricCtx: MetricContext;
  /** Batch sizes that failed for lack of memory, halved, per start point (group key). */
  readonly #memoryCaps = new Map<string, number>();
  readonly #baseMetrics: Record<RunName, Record<Metric, number>>;

  private constructor(model: Whisper, inputs: LabInputs, runs: Record<RunName, BaseRun>, ctx: MetricContext, base: Record<RunName, Record<Metric, number>>) {
    this.model = model;
    this.inputs = inputs;
    this.runs = runs;
    this.#metricCtx = ctx;
    this.#baseMetrics = base;
  }

  static async create(model: Whisper, inputs: LabInputs): Promise<PatchLab> {
    const c = model.config;
    for (const [what, id] of [['target', inputs.target], ['foil', inputs.foil]] as const) {
      if (!Number.isInteger(id) || id < 0 || id >= c.vocabSize) throw new EarshotError(`The ${what} token ${id} is not in this model's vocabulary (0–${c.vocabSize - 1}).`, 'bad-target');
    }
    if (inputs.prefix.length === 0) throw new EarshotError('The decoder prefix is empty; it needs at least <|startoftranscript|>.', 'bad-prefix');
    const counter: Counter = { blockEvals: 0 };
    const runs = {
      clean: createRun(model, 'clean', inputs.cleanMel, inputs.prefix, counter),
      corrupt: createRun(model, 'corrupt', inputs.corruptMel, inputs.prefix, counter),
    };
    const cleanLogProbs = tf.tidy(() => tf.reshape(tf.logSoftmax(runs.clean.lastLogits), [-1])) as tf.Tensor1D;
    const ctx: MetricContext = { target: inputs.target, foil: inputs.foil, cleanLogProbs };
    const base = {} as Record<RunName, Record<Metric, number>>;
    for (const r of ['clean', 'corrupt'] as const) {
      base[r] = {} as Record<Metric, number>;
      for (const m of METRICS) {
        const t = metricOf(m, runs[r].lastLogits, ctx);
        base[r][m] = (await t.data())[0];
        t.dispose();
      }
    }
    const lab = new PatchLab(model, inputs, runs, ctx, base);
    lab.counter.blockEvals = counter.blockEvals;
    return lab;
  }

  /** A metric on the unpatched runs. */
  baseMetric(run: RunName, metric: Metric): number {
    return this.#baseMetrics[run][metric];
  }

  /** Expands a sweep into its variants and runs them. */
  async sweep(spec: SweepSpec, opts: RunOptions = {}): Promise<SweepResult> {
    return this.runVariants(planVariants(spec, this.model.config, this.inputs.prefix.length), spec.direction, spec.metric, opts);
  }

  /** Runs arbitrary variants (several patches each, e.g. "all layers at once"). */
  async runVariants(variants: readonly Variant[], direction: Direction, metric: Metric, opts: RunOptions = {}): Promise<SweepResult> {
    const c = this.model.config;
    const base = baseRun(direction);
    const clean = this.#baseMetrics.clean[metric];
    const corrupt = this.#baseMetrics.corrupt[metric];
    const before = this.counter.blockEvals;
    const groups = groupByStart(variants, c);
    // Cache what the sources and the start points need, once, before any patched pass.
    const allPatches = variants.flatMap((v) => v.patches);
    const need = neededValues(allPatches, base);
    for (const g of groups) if (g.start.input) need.get(base)!.add(g.start.input);
    for (const r of ['clean', 'corrupt'] as const) ensureHooks(this.model, this.runs[r], need.get(r)!, this.counter);

    const results: PatchResult[] = new Array(variants.length);
    const total = variants.length;
    let done = 0;
    let batches = 0;
    let patchedEvals = 0;
    for (const g of groups) {
      let batchSize = Math.min(planBatchSize(c, this.inputs.prefix.length, g.start, opts), this.#memoryCaps.get(g.key) ?? Infinity);
      for (let i = 0; i < g.indices.length; i += batchSize) {
        if (opts.signal?.aborted) throw new EarshotError('The sweep was cancelled.', 'cancelled');
        const idx = g.indices.slice(i, i + batchSize);
        let values: number[];
        try {
          values = await this.#runBatch(idx.map((j) => variants[j].patches), base, g.start, metric);
        } catch (e) {
          if (!isOutOfMemory(e)) throw e;
          if (idx.length === 1) throw new EarshotError(OUT_OF_MEMORY, 'out-of-memory');
          // The memory plan was too hopeful for this device: halve the batch, retry the same
          // variants, and remember the smaller size for later sweeps of this lab.
          batchSize = Math.max(1, Math.floor(idx.length / 2));
          this.#memoryCaps.set(g.key, batchSize);
          i -= batchSize;
          continue;
        }
        patchedEvals += idx.length * blocksFrom(g.start, c);
        batches++;
        const fresh = idx.map((j, k) => ({ ...variants[j].label, value: values[k], effect: effectOf(direction, values[k], clean, corrupt) }));
        idx.forEach((j, k) => (results[j] = fresh[k]));
        done += idx.length;
        opts.onResults?.(fresh);
        opts.onProgress?.({ done, total, stage: `patching ${g.start.describe}` });
        // Let the event loop breathe (cancel messages, progress rendering) between batches.
        await new Promise((r) => setTimeout(r, 0));
      }
    }
    const perForward = c.encoderLayers + c.decoderLayers;
    return {
      direction,
      metric,
      clean,
      corrupt,
      results,
      cost: {
        variants: variants.length,
        batches,
        blockEvals: this.counter.blockEvals - before + patchedEvals,
        naiveBlockEvals: variants.length * perForward + (this.counter.blockEvals - before),
      },
    };
  }

  async #runBatch(patches: PatchSpec[][], base: RunName, start: StartPoint, metric: Metric): Promise<number[]> {
    const run = this.runs[base];
    const model = this.model;
    const c = model.config;
    const hooks = new HookSession({
      replace: buildReplacements(patches, { base, valueOf: (r, h) => this.runs[r].cache.get(h)! }),
    });
    // Patches on hook_logits index its positions, so they need every row of it.
    const lastOnly = !patches.some((ps) => ps.some((p) => p.hook === 'hook_logits'));
    const values = tf.tidy(() => {
      let logits: tf.Tensor3D;
      if (start.stage === 'encoder') {
        const encoderOut = start.block < 0 ? model.encode(run.mel, hooks) : model.encodeFrom(start.block, run.cache.get(start.input!) as tf.Tensor3D, hooks);
        const cross = model.crossKV(encoderOut, hooks);
        logits = model.decodeFrom(0, model.decoderEmbed(run.tokens, 0, hooks), cross, hooks, lastOnly);
      } else {
        const cross = start.recomputeCross ? model.crossKV(run.encoderOut, hooks) : run.cross;
        const residPre = start.block < 0 ? model.decoderEmbed(run.tokens, 0, hooks) : (run.cache.get(start.input!) as tf.Tensor3D);
        logits = model.decodeFrom(Math.max(start.block, 0), residPre, cross, hooks, lastOnly);
      }
      const [rows, T] = logits.shape;
      const last = tf.reshape(tf.slice(logits, [0, T - 1, 0], [rows, 1, c.vocabSize]), [rows, c.vocabSize]) as tf.Tensor2D;
      const m = metricOf(metric, last, this.#metricCtx);
      // Every real variant widens the batch at its patch; tile defensively if none did.
      return m.shape[0] === patches.length ? m : tf.tile(m, [patches.length]);
    });
    const out = Array.from(await values.data());
    values.dispose();
    return out;
  }

  dispose(): void {
    disposeRun(this.runs.clean);
    disposeRun(this.runs.corrupt);
    this.#metricCtx.cleanLogProbs.dispose();
  }
}

// ───────────────────────────── faults ─────────────────────────────

/** What a sweep says when even single-variant batches do not fit. */
export const OUT_OF_MEMORY = 'Not enough memory for this sweep even one variant at a time; try fewer positions or a smaller model.';

/**
 * An allocation failure: tfjs-wasm's heap could not grow ("Out of memory", "Cannot enlarge
 * memory"), WebGPU could not create a buffer ("out of memory", GPUOutOfMemoryError), or the
 * JS engine could not allocate an ArrayBuffer for a readback.
 */
export function isOutOfMemory(e: unknown): boolean {
  const name = (e as { name?: unknown } | null)?.name;
  if (name === 'GPUOutOfMemoryError') return true;
  const message = e instanceof Error ? e.message : String(e);
  return /out of memory|\bOOM\b|cannot enlarge memory|memory (?:grow|growth|allocation) fail|failed to (?:allocate|grow)|allocation failed/i.test(message);
}

/**
 * Runs a sweep as chunks of its planned batches (a chunk is `batchesPerChunk` batches, each
 * as big as the memory plan allows, so chunking adds no batches). `labOf` is asked for the
 * lab before every chunk: a caller that rebuilds its lab between chunks (device lost, see
 * models/device-loss.ts) hands the new one. `runChunks` runs the chunks in order (default:
 * one after another); the engine worker passes runBatchesWithFallback. A chunk's streamed
 * results and progress are held back until the next chunk starts, since a chunk that runs
 * again (its device was lost) must not show its first, discarded, numbers.
 */
export async function sweepInChunks(labOf: () => PatchLab, spec: SweepSpec, opts: ChunkedRunOptions = {}): Promise<SweepResult> {
  const first = labOf();
  const c = first.model.config;
  const variants = planVariants(spec, c, first.inputs.prefix.length);
  const batches = planBatches(variants, c, first.inputs.prefix.length, opts);
  const per = Math.max(1, Math.floor(opts.batchesPerChunk ?? 1));
  const chunks: number[][] = [];
  for (let i = 0; i < batches.length; i += per) chunks.push(batches.slice(i, i + per).flat());

  let done = 0;
  let held: { index: number; results: PatchResult[][]; progress: Progress | null; size: number } | null = null;
  const release = () => {
    if (!held) return;
    for (const r of held.results) opts.onResults?.(r);
    if (held.progress) opts.onProgress?.({ ...held.progress, done: done + held.size });
    done += held.size;
    held = null;
  };
  const runChunks = opts.runChunks ?? sequentially;
  const parts = await runChunks(chunks, async (chunk, index) => {
    if (held && held.index < index) release();
    const mine = { index, results: [] as PatchResult[][], progress: null as Progress | null, size: chunk.length };
    held = null;
    const part = await labOf().runVariants(
      chunk.map((j) => variants[j]),
      spec.direction,
      spec.metric,
      {
        ...opts,
        onResults: (r) => mine.results.push(r),
        onProgress: (p) => (mine.progress = { ...p, total: variants.length }),
      },
    );
    held = mine;
    return part;
  });
  release();

  const results: PatchResult[] = new Array(variants.length);
  chunks.forEach((chunk, i) => chunk.forEach((j, k) => (results[j] = parts[i].results[k])));
  const last = parts.at(-1);
  const sum = (f: (r: SweepResult) => number) => parts.reduce((a, r) => a + f(r), 0);
  return {
    direction: spec.direction,
    metric: spec.metric,
    clean: last?.clean ?? first.baseMetric('clean', spec.metric),
    corrupt: last?.corrupt ?? first.baseMetric('corrupt', spec.metric),
    results,
    cost: {
      variants: variants.length,
      batches: sum((r) => r.cost.batches),
      blockEvals: sum((r) => r.cost.blockEvals),
      naiveBlockEvals: sum((r) => r.cost.naiveBlockEvals),
    },
  };
}

export interface ChunkedRunOptions extends RunOptions {
  /** Planned batches per chunk (default 1). */
  batchesPerChunk?: number;
  /** Runs the chunks in order and returns their results in order. */
  runChunks?: <R>(chunks: readonly number[][], run: (chunk: number[], index: number) => Promise<R>) => Promise<R[]>;
}

async function sequentially<R>(chunks: readonly number[][], run: (chunk: number[], index: number) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (let i = 0; i < chunks.length; i++) out.push(await run(chunks[i], i));
  return out;
}

/** The batches PatchLab.runVariants would run `variants` in (indices into `variants`, in run order). */
export function planBatches(variants: readonly Variant[], c: WhisperConfig, prefixLength: number, opts: RunOptions = {}): number[][] {
  const batches: number[][] = [];
  for (const g of groupByStart(variants, c)) {
    const size = planBatchSize(c, prefixLength, g.start, opts);
    for (let i = 0; i < g.indices.length; i += size) batches.push(g.indices.slice(i, i + size));
  }
  return batches;
}

// ───────────────────────────── planning ─────────────────────────────

/** Expands a SweepSpec into one variant per hook × position group × head. */
export function planVariants(spec: SweepSpec, c: WhisperConfig, prefixLength: number): Variant[] {
  const hooks = expandHookPatterns(spec.hooks, c);
  const source = spec.source;
  const variants: Variant[] = [];
  for (const hook of hooks) {
    const extent = hookExtent(hook, c, prefixLength);
    const stack = parseHookName(hook).stack;
    const isEncoderTime = stack === 'encoder' || /cross_attn\.hook_[kv]$/.test(hook);
    const framesPerPos = hook === 'encoder.hook_input' ? 2 : 1;
    let [lo, hi] = [0, extent.positions];
    if (isEncoderTime && spec.encoderRange) {
      lo = Math.min(spec.encoderRange[0] * framesPerPos, extent.positions);
      hi = Math.min(spec.encoderRange[1] * framesPerPos, extent.positions);
    }
    // Time bins are an encoder notion; decoder tokens are patched one by one under "bins".
    const mode = spec.positions.kind === 'bins' && !isEncoderTime ? { ...spec, positions: { kind: 'each' as const } } : spec;
    const groups = positionGroups(mode, lo, hi, framesPerPos);
    const heads = spec.heads === 'each' && extent.heads !== null ? Array.from({ length: extent.heads }, (_, h) => h) : [null];
    for (const g of groups) {
      for (const head of heads) {
        variants.push({
          patches: [{ hook, positions: g.positions, heads: head === null ? null : [head], source }],
          label: { hook, position: g.position, positionEnd: g.positionEnd, head },
        });
      }
    }
  }
  return variants;
}

interface PositionGroup {
  positions: number[] | null;
  position: number | null;
  positionEnd: number | null;
}

function positionGroups(spec: SweepSpec, lo: number, hi: number, framesPerPos: number): PositionGroup[] {
  const span = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => a + i);
  const mode = spec.positions;
  switch (mode.kind) {
    case 'all':
      return [{ positions: lo === 0 && !spec.encoderRange ? null : span(lo, hi), position: null, positionEnd: null }];
    case 'each':
      return span(lo, hi).map((p) => ({ positions: [p], position: p, positionEnd: null }));
    case 'bins': {
      const size = mode.size * framesPerPos;
      const out: PositionGroup[] = [];
      for (let a = lo; a < hi; a += size) {
        const b = Math.min(a + size, hi);
        out.push({ positions: span(a, b), position: a, positionEnd: b });
      }
      return out;
    }
    case 'list':
      return mode.positions.map((p) => ({ positions: [p], position: p, positionEnd: null }));
    default: {
      const never: never = mode;
      throw new Error(`unknown position mode ${JSON.stringify(never)}`);
    }
  }
}

/**
 * Where a patched pass starts: the first block a patch can change. `input` is the
 * base-run hook holding that block's input (null when starting from the mel or tokens).
 */
interface StartPoint {
  stage: 'encoder' | 'decoder';
  /** Block index; −1 = from the embedding; = layer count for the final LayerNorm only. */
  block: number;
  input: string | null;
  recomputeCross: boolean;
  describe: string;
}

function startOf(hook: string, c: WhisperConfig): StartPoint {
  const p = parseHookName(hook, c);
  if (p.stack === 'encoder') {
    if (p.block !== null) return encStart(p.block, c);
    if (p.point === 'encoder.hook_ln_post') return encStart(c.encoderLayers, c);
    return { stage: 'encoder', block: -1, input: null, recomputeCross: false, describe: 'the encoder' };
  }
  if (p.block !== null) {
    const cross = p.point === 'cross_attn.hook_k' || p.point === 'cross_attn.hook_v';
    return { ...decStart(p.block, c), recomputeCross: cross };
  }
  if (p.point === 'decoder.hook_embed') return { stage: 'decoder', block: -1, input: null, recomputeCross: false, describe: 'the decoder' };
  return decStart(c.decoderLayers, c); // ln_final, logits
}

function encStart(block: number, c: WhisperConfig): StartPoint {
  const input = block < c.encoderLayers ? `encoder.blocks.${block}.hook_resid_pre` : `encoder.blocks.${c.encoderLayers - 1}.hook_resid_post`;
  return { stage: 'encoder', block, input, recomputeCross: false, describe: `encoder block ${block}` };
}

function decStart(block: number, c: WhisperConfig): StartPoint {
  const input = block < c.decoderLayers ? `decoder.blocks.${block}.hook_resid_pre` : `decoder.blocks.${c.decoderLayers - 1}.hook_resid_post`;
  return { stage: 'decoder', block, input, recomputeCross: false, describe: `decoder block ${block}` };
}

/** Orders start points: earlier in the computation first. */
function startRank(s: StartPoint, c: WhisperConfig): number {
  return s.stage === 'encoder' ? s.block : c.encoderLayers + 1 + s.block;
}

interface Group {
  /** Start point as a string: stage, block, whether cross K/V is recomputed. */
  key: string;
  start: StartPoint;
  indices: number[];
}

/** Groups variants by the earliest block any of their patches touches. */
function groupByStart(variants: readonly Variant[], c: WhisperConfig): Group[] {
  const groups = new Map<string, Group>();
  variants.forEach((v, i) => {
    if (v.patches.length === 0) throw new EarshotError('A variant without patches cannot be run.', 'bad-patch');
    const starts = v.patches.map((p) => startOf(p.hook, c));
    const first = starts.reduce((a, b) => (startRank(b, c) < startRank(a, c) ? b : a));
    // Any cross K/V patch on the decoder side forces recomputing cross K/V.
    const start = first.stage === 'decoder' && starts.some((s) => s.recomputeCross) ? { ...first, recomputeCross: true } : first;
    const key = `${start.stage}:${start.block}:${start.recomputeCross}`;
    const g = groups.get(key) ?? { key, start, indices: [] };
    g.indices.push(i);
    groups.set(key, g);
  });
  return [...groups.values()].sort((a, b) => startRank(a.start, c) - startRank(b.start, c));
}

/** Blocks one patched row evaluates from a start point. */
function blocksFrom(s: StartPoint, c: WhisperConfig): number {
  if (s.stage === 'encoder') return c.encoderLayers - Math.max(s.block, 0) + c.decoderLayers;
  return c.decoderLayers - Math.max(s.block, 0);
}

/**
 * Variants per batch from a memory budget: the largest activations one row holds
 * at once (attention scores and MLP hidden states of the stage it runs), ×3 for
 * temporaries.
 */
export function planBatchSize(c: WhisperConfig, prefixLength: number, s: StartPoint, opts: RunOptions): number {
  const budget = opts.memoryBudget ?? 256 * 1024 ** 2;
  const maxBatch = opts.maxBatch ?? 64;
  const S = c.maxSourcePositions;
  const T = prefixLength;
  const enc = s.stage === 'encoder' ? Math.max(c.encoderHeads * S * S, S * c.encoderFfnDim, S * c.dModel * 4) : 0;
  const dec = Math.max(c.decoderHeads * T * S, T * c.decoderFfnDim) + c.vocabSize + (s.recomputeCross || s.stage === 'encoder' ? 2 * c.decoderLayers * S * c.dModel : 0);
  const perRow = 3 * 4 * (enc + dec);
  return Math.max(1, Math.min(maxBatch, Math.floor(budget / perRow)));
}
