/**
 * The lab requests of the engine worker: a prepared minimal pair (both clips' log-mels,
 * transcripts and the PatchLab made from them) and the experiments of lab/ run on it.
 * Thin like the rest of workers/: every number comes from lab/; this file only keeps
 * the state between requests, validates what arrives and shapes what leaves.
 */
import * as tf from '@tensorflow/tfjs-core';
import { samplesToMel } from '../models/clip.ts';
import { EarshotError, isEarshotError } from '../models/errors.ts';
import type { LoadedModel } from '../models/load.ts';
import { logMel, HOP_LENGTH, SAMPLE_RATE } from '../models/logmel.ts';
import { attributionPatching } from '../lab/attribution.ts';
import { whiteNoiseLike } from '../lab/corruptions.ts';
import { rivalToken } from '../lab/foil.ts';
import { listenVsGuess, pathwayGrounding } from '../lab/grounding.ts';
import { encoderLens, logitLens } from '../lab/lens.ts';
import { ensureHooks } from '../lab/runs.ts';
import { METRICS, SweepSpecSchema, type Metric } from '../lab/spec.ts';
import { PatchLab, sweepInChunks, type ChunkedRunOptions } from '../lab/sweep.ts';
import type { InitBackendOptions } from '../models/backend.ts';
import { runBatchesWithFallback } from '../models/device-loss.ts';
import { chooseTarget, transcribePair } from '../lab/target.ts';
import { throwIfAborted } from './fetch-file.ts';
import type { AttentionReport, BackendReport, LabReport, MelImage, PairReport, PairTranscript, ProgressPayload, RequestPayloads, ResultPayloads, TargetChoiceInput } from './protocol.ts';

/** Seconds per encoder position (two 10 ms mel frames). */
const ENCODER_STEP = (2 * HOP_LENGTH) / SAMPLE_RATE;

interface PreparedPair {
  /** The model the pair was prepared with: a new model invalidates it. */
  model: LoadedModel;
  cleanMel: Float32Array;
  corruptMel: Float32Array;
  report: PairReport;
  lab: PatchLab | null;
}

let pair: PreparedPair | null = null;

/** Drops the pair (its tensors) when the model it was made with goes away. */
export function forgetPair(): void {
  pair?.lab?.dispose();
  pair = null;
}

/** The prepared pair's clean log-mel and transcript (prompt + tokens), if it was made with `loaded`. */
export function preparedClean(loaded: LoadedModel): { mel: Float32Array; tokens: number[] } | null {
  if (!pair || pair.model !== loaded) return null;
  return { mel: pair.cleanMel, tokens: [...pair.report.prompt, ...pair.report.clean.tokens] };
}

function floats(buffer: ArrayBuffer, what: string): Float32Array {
  if (!(buffer instanceof ArrayBuffer) || buffer.byteLength % 4 !== 0) throw new EarshotError(`${what} must be float32 samples.`, 'bad-request');
  return new Float32Array(buffer);
}

export function melImage(loaded: LoadedModel | null, { samples }: RequestPayloads['logmel']): MelImage {
  const x = floats(samples, 'The clip');
  if (x.length === 0) throw new EarshotError('The clip has no samples.', 'empty-audio');
  const nMels = loaded?.config.numMelBins ?? 80;
  const frames = Math.max(1, Math.ceil(x.length / HOP_LENGTH));
  const mel = logMel(x, { nMels, nFrames: frames });
  return { mel: mel.buffer as ArrayBuffer, nMels, frames, seconds: x.length / SAMPLE_RATE };
}

export function whiteNoise({ samples, seed }: RequestPayloads['white-noise']): ResultPayloads['white-noise'] {
  const x = floats(samples, 'The clean clip');
  return { samples: whiteNoiseLike(x, seed).buffer as ArrayBuffer };
}

export function tokenize(loaded: LoadedModel, { text }: RequestPayloads['tokenize']): ResultPayloads['tokenize'] {
  if (!loaded.tokenizer) throw new EarshotError('This model has no tokenizer.json, so words cannot be turned into tokens; type a token id instead.', 'no-tokenizer');
  const tokens = loaded.tokenizer.encode(String(text).slice(0, 200));
  if (tokens.length === 0) throw new EarshotError('That text gives no tokens; type a word.', 'empty-text');
  return { tokens, pieces: pieces(loaded, tokens) };
}

function pieces(loaded: LoadedModel, ids: readonly number[]): (string | null)[] {
  const t = loaded.tokenizer;
  return ids.map((id) => {
    if (!t) return null;
    try {
      return t.tokenToString(id);
    } catch {
      return null;
    }
  });
}

export async function preparePair(loaded: LoadedModel, { clean, corrupt, choice }: RequestPayloads['prepare-pair'], signal: AbortSignal, progress: (p: ProgressPayload) => void): Promise<PairReport> {
  const c = loaded.config;
  const cleanClip = samplesToMel(floats(clean, 'The clean clip'), c, { trim: true, label: 'The clean clip' });
  const corruptClip = samplesToMel(floats(corrupt, 'The corrupted clip'), c, { trim: true, label: 'The corrupted clip' });
  progress({ done: 0, total: 3, stage: 'Transcribing both clips' });
  const t = await transcribePair(loaded.model, cleanClip.mel, corruptClip.mel, loaded.prompt);
  throwIfAborted(signal);
  const transcript = (tokens: number[], clip: typeof cleanClip): PairTranscript => ({
    tokens,
    pieces: pieces(loaded, tokens),
    text: loaded.tokenizer ? loaded.tokenizer.decode(tokens) : null,
    seconds: clip.seconds,
    trimmed: clip.trimmed,
  });
  forgetPair();
  const longest = Math.max(cleanClip.seconds, corruptClip.seconds);
  const report: PairReport = {
    clean: transcript(t.clean, cleanClip),
    corrupt: transcript(t.corrupt, corruptClip),
    prompt: loaded.prompt,
    encoderPositions: Math.min(c.maxSourcePositions, Math.max(1, Math.ceil(longest / ENCODER_STEP - 1e-9))),
    maxSourcePositions: c.maxSourcePositions,
    lab: null,
    choiceError: null,
    choiceNote: null,
  };
  pair = { model: loaded, cleanMel: cleanClip.mel, corruptMel: corruptClip.mel, report, lab: null };
  let wanted = choice ?? null;
  if (!wanted) {
    try {
      const chosen = chooseTarget(loaded.prompt, t.clean, t.corrupt, loaded.special.eot);
      wanted = { prefix: chosen.prefix, target: chosen.target, foil: chosen.foil };
    } catch (e) {
      if (!isEarshotError(e, 'same-transcript')) throw e;
      // Same words: the target is the clean run's first token, the foil the corrupted
      // run's best other token at that position.
      const target = t.clean[0] ?? loaded.special.eot;
      const foil = await rivalToken(loaded.model, corruptClip.mel, loaded.prompt, target);
      wanted = { prefix: [...loaded.prompt], target, foil };
      report.choiceNote = "Both clips are transcribed alike, so the foil is the corrupted run's most likely token other than the target, at the first position. Click or type another target/foil to change it.";
    }
  }
  if (wanted) {
    progress({ done: 2, total: 3, stage: 'Running both clips once for patching' });
    report.lab = await setTarget(loaded, { choice: wanted });
  }
  return report;
}

function checkChoice(loaded: LoadedModel, choice: TargetChoiceInput): TargetChoiceInput {
  const c = loaded.config;
  const ok = (id: unknown) => Number.isInteger(id) && (id as number) >= 0 && (id as number) < c.vocabSize;
  if (!choice || !Array.isArray(choice.prefix) || !choice.prefix.every(ok) || !ok(choice.target) || !ok(choice.foil)) {
    throw new EarshotError(`Target, foil and prefix must be token ids of this model (0–${c.vocabSize - 1}).`, 'bad-target');
  }
  if (choice.prefix.length === 0 || choice.prefix.length >= c.maxTargetPositions) {
    throw new EarshotError(`The prefix must hold 1–${c.maxTargetPositions - 1} tokens; it has ${choice.prefix.length}.`, 'bad-prefix');
  }
  if (choice.target === choice.foil) throw new EarshotError('The target and the foil are the same token; pick two different tokens.', 'same-target');
  return { prefix: [...choice.prefix], target: choice.target, foil: choice.foil };
}

export async function setTarget(loaded: LoadedModel, { choice }: RequestPayloads['set-target']): Promise<LabReport> {
  const p = currentPair(loaded, false);
  const wanted = checkChoice(loaded, choice);
  p.lab?.dispose();
  p.lab = null;
  p.report.lab = null;
  const lab = await PatchLab.create(loaded.model, { cleanMel: p.cleanMel, corruptMel: p.corruptMel, prefix: wanted.prefix, target: wanted.target, foil: wanted.foil });
  p.lab = lab;
  const base = { clean: {} as Record<Metric, number>, corrupt: {} as Record<Metric, number> };
  for (const m of METRICS) {
    base.clean[m] = lab.baseMetric('clean', m);
    base.corrupt[m] = lab.baseMetric('corrupt', m);
  }
  const report: LabReport = {
    choice: wanted,
    pieces: { prefix: pieces(loaded, wanted.prefix), target: pieces(loaded, [wanted.target])[0], foil: pieces(loaded, [wanted.foil])[0] },
    index: wanted.prefix.length - loaded.prompt.length,
    base,
  };
  p.report.lab = report;
  p.report.choiceError = null;
  return report;
}

function currentPair(loaded: LoadedModel, needLab: true): PreparedPair & { lab: PatchLab };
function currentPair(loaded: LoadedModel, needLab: false): PreparedPair;
function currentPair(loaded: LoadedModel, needLab: boolean): PreparedPair {
  if (!pair || pair.model !== loaded) throw new EarshotError('Prepare the two clips with this model first (step 3).', 'no-pair');
  if (needLab && !pair.lab) throw new EarshotError('Choose a target and a foil token first.', 'no-target');
  return pair;
}

/** How the engine rebuilds its model on wasm once the WebGPU device is lost (workers/engine.worker.ts). */
export interface DeviceLossRecovery {
  /** Reloads the model on wasm from the bytes kept at load; returns it and the new backend report. */
  rebuild: (reason: string) => Promise<{ loaded: LoadedModel | null; backend: BackendReport }>;
  wasm: InitBackendOptions;
}

/**
 * Re-creates the prepared pair's PatchLab on `loaded` (the same model rebuilt on another
 * backend): same mels, same prefix/target/foil, so the same base runs.
 */
export async function rebuildPair(loaded: LoadedModel): Promise<void> {
  if (!pair) return;
  const old = pair.lab;
  pair.model = loaded;
  pair.lab = null;
  if (!old) return;
  try {
    old.dispose();
  } catch {
    // Tensors of a lost device.
  }
  pair.lab = await PatchLab.create(loaded.model, old.inputs);
}

/**
 * The sweep runs in chunks of its planned batches (lab/sweep.ts sweepInChunks); on WebGPU
 * each chunk goes through runBatchesWithFallback, so a lost device costs one chunk: the
 * engine moves to wasm, the model and the pair's base runs are rebuilt, and the chunk runs
 * again there. Finished chunks are kept.
 */
export async function sweep(
  loaded: LoadedModel,
  { spec }: RequestPayloads['sweep'],
  signal: AbortSignal,
  progress: (p: ProgressPayload) => void,
  recovery?: DeviceLossRecovery,
): Promise<ResultPayloads['sweep']> {
  const parsed = SweepSpecSchema.safeParse(spec);
  if (!parsed.success) throw new EarshotError(`The sweep settings are not valid: ${parsed.error.issues[0]?.message ?? 'unknown problem'}.`, 'bad-spec');
  currentPair(loaded, true);
  let pending: ResultPayloads['sweep']['results'] = [];
  let last: ProgressPayload = { done: 0, total: 0, stage: 'patching' };
  const opts: ChunkedRunOptions = {
    signal,
    // Results ride on the progress message of the batch that made them.
    onResults: (results) => (pending = [...pending, ...results]),
    onProgress: (p) => {
      last = p;
      progress({ ...p, results: pending });
      pending = [];
    },
    runChunks: (chunks, run) =>
      runBatchesWithFallback(chunks, run, {
        wasm: recovery?.wasm,
        isOwnError: (e) => isEarshotError(e, 'cancelled'),
        recover: async (reason) => {
          if (!recovery) throw new EarshotError(`The GPU device was lost (${reason}); reload the page.`, 'device-lost');
          const { loaded: rebuilt, backend } = await recovery.rebuild(reason);
          if (!rebuilt) throw new EarshotError(`The GPU device was lost (${reason}); load the model again.`, 'device-lost');
          await rebuildPair(rebuilt);
          progress({ ...last, stage: 'The GPU was lost: continuing on WASM', backend });
        },
      }),
  };
  return sweepInChunks(() => {
    if (!pair?.lab) throw new EarshotError('Choose a target and a foil token first.', 'no-target');
    return pair.lab;
  }, parsed.data, opts);
}

export async function grounding(loaded: LoadedModel, { metric }: RequestPayloads['grounding']): Promise<ResultPayloads['grounding']> {
  if (!METRICS.includes(metric)) throw new EarshotError(`Unknown metric ${String(metric)}.`, 'bad-request');
  return pathwayGrounding(currentPair(loaded, true).lab, metric);
}

export async function listenGuess(loaded: LoadedModel, { maxTokens }: RequestPayloads['listen-vs-guess']): Promise<ResultPayloads['listen-vs-guess']> {
  const p = currentPair(loaded, false);
  const room = loaded.config.maxTargetPositions - loaded.prompt.length;
  const n = Math.max(0, Math.min(room, Math.floor(Number(maxTokens) || 0), 64));
  const transcript = p.report.clean.tokens.slice(0, n);
  return listenVsGuess(loaded.model, p.cleanMel, p.corruptMel, loaded.prompt, transcript);
}

export async function lenses(loaded: LoadedModel): Promise<ResultPayloads['lens']> {
  const { lab } = currentPair(loaded, true);
  const opts = { target: lab.inputs.target, foil: lab.inputs.foil };
  return { logit: await logitLens(loaded.model, lab.runs.clean, opts, lab.counter), encoder: await encoderLens(loaded.model, lab.runs.clean, opts, lab.counter) };
}

export async function attribution(loaded: LoadedModel, { hooks, topK, encoderRange }: RequestPayloads['attribution']): Promise<ResultPayloads['attribution']> {
  if (!Array.isArray(hooks) || hooks.length === 0 || hooks.length > 1000 || !hooks.every((h) => typeof h === 'string')) throw new EarshotError('Attribution needs a list of hooks.', 'bad-request');
  const k = Math.max(1, Math.min(200, Math.floor(Number(topK) || 20)));
  return attributionPatching(currentPair(loaded, true).lab, hooks, { topK: k, encoderRange });
}

/** Cross-attention weights of the clean run at the last prefix position, per layer and head. */
export async function attention(loaded: LoadedModel): Promise<AttentionReport> {
  const { lab } = currentPair(loaded, true);
  const c = loaded.config;
  const names = Array.from({ length: c.decoderLayers }, (_, l) => `decoder.blocks.${l}.cross_attn.hook_pattern`);
  ensureHooks(loaded.model, lab.runs.clean, names, lab.counter);
  const last = lab.inputs.prefix.length - 1;
  const rows = tf.tidy(() => tf.concat(names.map((n) => {
    const p = lab.runs.clean.cache.get(n)!; // [1, H, T, S]
    return tf.reshape(tf.slice(p, [0, 0, last, 0], [1, -1, 1, -1]), [1, c.decoderHeads, c.maxSourcePositions]);
  })));
  const weights = (await rows.data()) as Float32Array;
  rows.dispose();
  return { weights: weights.buffer as ArrayBuffer, layers: c.decoderLayers, heads: c.decoderHeads, positions: c.maxSourcePositions };
}

