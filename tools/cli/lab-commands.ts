/**
 * The lab's experiments from the command line: patch, grounding, lens, attribute.
 * Each reads a model and a minimal pair, sets up PatchLab exactly as the worker
 * does, runs one experiment of lab/ and writes JSON.
 */
import { writeFile } from 'node:fs/promises';
import { attributionPatching } from '../../lab/attribution.ts';
import { layerCka } from '../../lab/cka.ts';
import { whiteNoiseLike } from '../../lab/corruptions.ts';
import { inputGrounding, listenVsGuess, pathwayGrounding } from '../../lab/grounding.ts';
import { encoderLens, logitLens } from '../../lab/lens.ts';
import { PatchLab } from '../../lab/sweep.ts';
import { METRICS, defaultSource, type Direction, type Metric, type PositionMode, type Source, type SweepSpec } from '../../lab/spec.ts';
import { chooseTarget, nextTokens, transcribePair } from '../../lab/target.ts';
import { samplesToMel, type PreparedClip } from '../../models/clip.ts';
import { EarshotError } from '../../models/errors.ts';
import type { LoadedModel } from '../../models/load.ts';
import { clipToMel } from '../../models/wav-clip.ts';
import { choice, intOption, openModel, parseIdList, required, warn, type Args } from './args.ts';
import { MAX_AUDIO_BYTES, readBytes } from './files.ts';
import { registerNodeGradients } from './node-backend.ts';

/** Encoder positions are 20 ms apart (two 10 ms mel frames each). */
const MS_PER_POSITION = 20;

interface Pair {
  loaded: LoadedModel;
  lab: PatchLab;
  clean: PreparedClip;
  corrupt: PreparedClip;
  /** Encoder positions the clips cover (the rest of the window is silent padding). */
  encoderRange: [number, number];
  transcripts: { clean: number[]; corrupt: number[] } | null;
}

async function readClip(path: string, loaded: LoadedModel, trim: boolean): Promise<PreparedClip> {
  const clip = clipToMel(await readBytes(path, 'audio file', MAX_AUDIO_BYTES), loaded.config, { trim, label: path });
  warn(clip.warnings);
  return clip;
}

/** Model + clips + prefix/target/foil (each defaulted from the transcripts unless given). */
export async function preparePair(args: Args): Promise<Pair> {
  const loaded = await openModel(args);
  const c = loaded.config;
  const trim = args.trim ?? false;
  const clean = await readClip(required(args, 'clean'), loaded, trim);
  const corruptArg = required(args, 'corrupt');
  // "white-noise": the same length and RMS as the clean clip, instead of a second recording.
  const corrupt = corruptArg === 'white-noise' ? samplesToMel(whiteNoiseLike(clean.samples, 0), c, { label: 'white noise' }) : await readClip(corruptArg, loaded, trim);
  let prefix = args.prefix !== undefined ? parseIdList(args.prefix, '--prefix') : undefined;
  const bad = prefix?.find((id) => id >= c.vocabSize);
  if (bad !== undefined) throw new EarshotError(`--prefix has token id ${bad}, beyond this model's vocabulary of ${c.vocabSize}.`, 'usage');
  let target = intOption(args, 'target', 0, c.vocabSize - 1);
  let foil = intOption(args, 'foil', 0, c.vocabSize - 1);
  let transcripts: Pair['transcripts'] = null;
  if (prefix === undefined) {
    transcripts = await transcribePair(loaded.model, clean.mel, corrupt.mel, loaded.prompt);
    if (target !== undefined && foil !== undefined) prefix = loaded.prompt;
    else {
      const chosen = chooseTarget(loaded.prompt, transcripts.clean, transcripts.corrupt, loaded.special.eot);
      prefix = chosen.prefix;
      target ??= chosen.target;
      foil ??= chosen.foil;
    }
  } else if (target === undefined || foil === undefined) {
    const next = await nextTokens(loaded.model, clean.mel, corrupt.mel, prefix);
    target ??= next.clean;
    foil ??= next.corrupt;
  }
  if (target === foil) throw new EarshotError(`The target and foil are the same token (${target}); give --target and --foil that differ.`, 'usage');
  const lab = await PatchLab.create(loaded.model, { cleanMel: clean.mel, corruptMel: corrupt.mel, prefix, target: target!, foil: foil! });
  const seconds = Math.max(clean.seconds, corrupt.seconds);
  const encoderRange: [number, number] = [0, Math.min(c.maxSourcePositions, Math.ceil((seconds * 1000) / MS_PER_POSITION))];
  return { loaded, lab, clean, corrupt, encoderRange, transcripts };
}

function parsePositions(text: string): PositionMode {
  if (text === 'all' || text === 'each') return { kind: text };
  const m = /^bins:(\d+(?:\.\d+)?)$/.exec(text);
  if (m && Number(m[1]) > 0) return { kind: 'bins', size: Math.max(1, Math.round(Number(m[1]) / MS_PER_POSITION)) };
  throw new EarshotError(`--positions must be all, each or bins:MS (time bins of MS milliseconds, e.g. bins:100), not "${text}".`, 'usage');
}

function parseSource(text: string | undefined, direction: Direction): Source {
  if (text === undefined) return defaultSource(direction);
  if (text === 'clean' || text === 'corrupt' || text === 'zero' || text === 'mean') return { kind: text };
  const m = /^noise:(\d+(?:\.\d+)?)$/.exec(text);
  if (m && Number(m[1]) > 0) return { kind: 'noise', scale: Number(m[1]), seed: 0 };
  throw new EarshotError(`--source must be clean, corrupt, zero, mean or noise:K (Gaussian noise of K × the activation's std), not "${text}".`, 'usage');
}

function header(p: Pair) {
  const { prefix, target, foil } = p.lab.inputs;
  return { prefix, target, foil, transcripts: p.transcripts, encoderRange: p.encoderRange };
}

async function writeJson(args: Args, value: unknown): Promise<void> {
  await writeFile(required(args, 'out'), JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v)));
}

export async function patchCommand(args: Args): Promise<void> {
  const direction = choice(args.direction, 'direction', ['denoise', 'noise'] as const);
  const metric = choice(args.metric, 'metric', METRICS) as Metric;
  const spec: SweepSpec = {
    hooks: required(args, 'hooks').split(','),
    positions: parsePositions(args.positions ?? 'all'),
    heads: choice(args.heads, 'heads', ['all', 'each'] as const),
    direction,
    source: parseSource(args.source, direction),
    metric,
  };
  required(args, 'out');
  const pair = await preparePair(args);
  if (!args['full-window']) spec.encoderRange = pair.encoderRange;
  const memoryMb = intOption(args, 'memory-mb', 16, 65536);
  const r = await pair.lab.sweep(spec, { memoryBudget: memoryMb === undefined ? undefined : memoryMb * 1024 ** 2 });
  await writeJson(args, {
    ...header(pair),
    direction,
    metric,
    source: spec.source,
    clean: r.clean,
    corrupt: r.corrupt,
    results: r.results,
    cost: r.cost,
  });
  pair.lab.dispose();
}

export async function groundingCommand(args: Args): Promise<void> {
  required(args, 'out');
  const metric = choice(args.metric, 'metric', METRICS) as Metric;
  const pair = await preparePair(args);
  const model = pair.loaded.model;
  const out: Record<string, unknown> = { ...header(pair), pathway: await pathwayGrounding(pair.lab, metric) };
  if (args['per-token']) {
    const transcript = pair.transcripts?.clean ?? pair.lab.inputs.prefix.slice(pair.loaded.prompt.length);
    out.perToken = await listenVsGuess(model, pair.clean.mel, pair.corrupt.mel, pair.loaded.prompt, transcript);
  }
  if (args['text-clean'] !== undefined || args['text-corrupt'] !== undefined) {
    // Text condition: a decoder-context pair, e.g. <|startofprev|> words… before the prompt.
    const textClean = parseIdList(args['text-clean'] ?? '', '--text-clean');
    const textCorrupt = parseIdList(args['text-corrupt'] ?? '', '--text-corrupt');
    const rest = pair.lab.inputs.prefix;
    out.input = await inputGrounding(model, {
      cleanMel: pair.clean.mel,
      corruptMel: pair.corrupt.mel,
      cleanPrefix: [...textClean, ...rest],
      corruptPrefix: [...textCorrupt, ...rest],
      target: pair.lab.inputs.target,
      foil: pair.lab.inputs.foil,
      metric,
    });
  }
  await writeJson(args, out);
  pair.lab.dispose();
}

export async function lensCommand(args: Args): Promise<void> {
  required(args, 'out');
  const pair = await preparePair(args);
  const { model } = pair.loaded;
  const { target, foil } = pair.lab.inputs;
  const opts = { target, foil };
  const out = {
    ...header(pair),
    logitLens: { clean: await logitLens(model, pair.lab.runs.clean, opts), corrupt: await logitLens(model, pair.lab.runs.corrupt, opts) },
    encoderLens: { clean: await encoderLens(model, pair.lab.runs.clean, opts), corrupt: await encoderLens(model, pair.lab.runs.corrupt, opts) },
    cka: {
      encoder: await layerCka(model, pair.lab.runs.clean, 'encoder', pair.encoderRange),
      decoder: await layerCka(model, pair.lab.runs.clean, 'decoder'),
    },
  };
  await writeJson(args, out);
  pair.lab.dispose();
}

export async function attributeCommand(args: Args): Promise<void> {
  required(args, 'out');
  const patterns = (args.hooks ?? 'encoder.blocks.*.hook_resid_post,decoder.blocks.*.hook_resid_pre,decoder.blocks.*.hook_cross_attn_out,decoder.blocks.*.hook_self_attn_out').split(',');
  const top = intOption(args, 'top', 1, 10_000) ?? 20;
  registerNodeGradients();
  const pair = await preparePair(args);
  const r = await attributionPatching(pair.lab, patterns, { topK: top, encoderRange: args['full-window'] ? undefined : pair.encoderRange });
  await writeJson(args, { ...header(pair), ...r });
  pair.lab.dispose();
}
