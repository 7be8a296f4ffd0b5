/**
 * Parity against Hugging Face transformers: the golden outputs of
 * tools/reference/make_fixtures.py, compared hook by hook on whatever tfjs
 * backend is current. Shared by the Node tests (cpu, wasm) and the browser test
 * (webgpu), so all three check exactly the same things.
 */
import * as tf from '@tensorflow/tfjs-core';
import { samplesToMel } from '../../models/clip.ts';
import { loadAudio16k } from '../../models/audio.ts';
import { greedyDecode } from '../../models/decode.ts';
import { HookSession } from '../../models/hook-session.ts';
import { hookNames } from '../../models/hooks.ts';
import { loadCheckpoint, type LoadedModel } from '../../models/load.ts';
import { SafeTensors } from '../../models/safetensors.ts';
import { readRepoFile } from '../util/fixtures.ts';

export const MICRO_DIR = 'tests/fixtures/micro';
/** make_fixtures.py decodes at most this many new tokens. */
const GREEDY_MAX_NEW = 8;

export interface GoldenMeta {
  prefix: number[];
  hooks: string[];
  shapes: Record<string, number[]>;
  greedy: Record<'clean' | 'corrupt', { prompt: number[]; tokens: number[] }>;
}

export interface Fixture {
  loaded: LoadedModel;
  golden: SafeTensors;
  meta: GoldenMeta;
  clean: Uint8Array;
  corrupt: Uint8Array;
}

export interface Comparison {
  name: string;
  maxAbsErr: number;
  /** Largest |golden| value, so a tolerance can scale with the activation. */
  scale: number;
  shapeOk: boolean;
}

async function need(path: string): Promise<Uint8Array> {
  const bytes = await readRepoFile(path);
  if (!bytes) throw new Error(`Missing fixture ${path}; regenerate with tools/reference/make_fixtures.py.`);
  return bytes;
}

export async function loadFixture(dir = MICRO_DIR): Promise<Fixture> {
  const json = (b: Uint8Array) => JSON.parse(new TextDecoder().decode(b));
  const loaded = await loadCheckpoint({
    config: json(await need(`${dir}/config.json`)),
    safetensors: await need(`${dir}/model.safetensors`),
  });
  return {
    loaded,
    golden: SafeTensors.parse(await need(`${dir}/golden.safetensors`)),
    meta: json(await need(`${dir}/golden.json`)) as GoldenMeta,
    clean: await need(`${dir}/clean.wav`),
    corrupt: await need(`${dir}/corrupt.wav`),
  };
}

export function compare(name: string, actual: ArrayLike<number>, actualShape: readonly number[], golden: SafeTensors, key: string): Comparison {
  const want = golden.getF32(key);
  const wantShape = golden.info(key).shape;
  const shapeOk = actualShape.length === wantShape.length && actualShape.every((v, i) => v === wantShape[i]);
  let maxAbsErr = shapeOk ? 0 : Infinity;
  let scale = 0;
  if (shapeOk) {
    for (let i = 0; i < want.length; i++) {
      const err = Math.abs(actual[i] - want[i]);
      // NaN must fail, so compare with a negated test.
      if (!(err <= maxAbsErr)) maxAbsErr = Number.isNaN(err) ? Infinity : err;
      scale = Math.max(scale, Math.abs(want[i]));
    }
  }
  return { name, maxAbsErr, scale, shapeOk };
}

/** Our log-mel of the fixture's clean clip against transformers' feature extractor. */
export function compareLogMel(f: Fixture, which: 'clean' | 'corrupt' = 'clean'): Comparison {
  const c = f.loaded.config;
  const { mel } = samplesToMel(loadAudio16k(which === 'clean' ? f.clean : f.corrupt), c);
  return compare(`logmel.${which}`, mel, [c.numMelBins, 2 * c.maxSourcePositions], f.golden, `logmel.${which}`);
}

/**
 * Teacher-forced pass over the golden prefix with every hook captured, fed the
 * golden log-mel so the model is checked apart from the front end.
 */
export async function compareHooks(f: Fixture): Promise<Comparison[]> {
  const { model, config } = f.loaded;
  const names = hookNames(config);
  const hooks = new HookSession({ capture: names });
  const mel = tf.tensor3d(f.golden.getF32('logmel.clean'), [1, config.numMelBins, 2 * config.maxSourcePositions]);
  const tokens = tf.tensor2d([f.meta.prefix], [1, f.meta.prefix.length], 'int32');
  const encoderOut = model.encode(mel, hooks);
  const cross = model.crossKV(encoderOut, hooks);
  const { logits, present } = model.decode(tokens, cross, hooks);
  const out: Comparison[] = [];
  for (const name of names) {
    const t = hooks.cache.get(name);
    if (!t) throw new Error(`hook ${name} never fired`);
    out.push(compare(name, await t.data(), t.shape.slice(1), f.golden, `hook/${name}`));
  }
  out.push(compare('logits', await logits.data(), logits.shape.slice(1), f.golden, 'hook/hook_logits'));
  tf.dispose([mel, tokens, encoderOut, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  hooks.dispose();
  return out;
}

/**
 * Logits on the clean clip's golden log-mel with no hook anywhere: the plans the model only
 * takes when nothing is hooked (e.g. per-head encoder self-attention on wasm) against transformers'.
 */
export async function compareUnhookedLogits(f: Fixture): Promise<Comparison> {
  const { model, config } = f.loaded;
  const mel = tf.tensor3d(f.golden.getF32('logmel.clean'), [1, config.numMelBins, 2 * config.maxSourcePositions]);
  const tokens = tf.tensor2d([f.meta.prefix], [1, f.meta.prefix.length], 'int32');
  const encoderOut = model.encode(mel);
  const cross = model.crossKV(encoderOut);
  const { logits, present } = model.decode(tokens, cross);
  const cmp = compare('logits (no hooks)', await logits.data(), logits.shape.slice(1), f.golden, 'hook/hook_logits');
  tf.dispose([mel, tokens, encoderOut, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  return cmp;
}

/** Logits on the corrupt clip (through our own front end) against transformers'. */
export async function compareCorruptLogits(f: Fixture): Promise<Comparison> {
  const { model, config } = f.loaded;
  const { mel } = samplesToMel(loadAudio16k(f.corrupt), config);
  const melT = tf.tensor3d(mel, [1, config.numMelBins, 2 * config.maxSourcePositions]);
  const tokens = tf.tensor2d([f.meta.prefix], [1, f.meta.prefix.length], 'int32');
  const encoderOut = model.encode(melT);
  const cross = model.crossKV(encoderOut);
  const { logits, present } = model.decode(tokens, cross);
  const cmp = compare('logits.corrupt', await logits.data(), logits.shape.slice(1), f.golden, 'logits.corrupt');
  tf.dispose([melT, tokens, encoderOut, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  return cmp;
}

/** Greedy tokens of both clips, from audio bytes through our whole pipeline. */
export async function greedyTokens(f: Fixture): Promise<Record<'clean' | 'corrupt', number[]>> {
  const { model, config } = f.loaded;
  const result = {} as Record<'clean' | 'corrupt', number[]>;
  for (const which of ['clean', 'corrupt'] as const) {
    const { mel } = samplesToMel(loadAudio16k(which === 'clean' ? f.clean : f.corrupt), config);
    const melT = tf.tensor3d(mel, [1, config.numMelBins, 2 * config.maxSourcePositions]);
    const g = f.meta.greedy[which];
    result[which] = await greedyDecode(model, melT, { prompt: g.prompt, maxNewTokens: GREEDY_MAX_NEW });
    melT.dispose();
  }
  return result;
}

/** Tolerance for float32 activations: 1e-4 absolute for values of order 1, relative beyond. */
export function tolerance(c: Comparison, perUnit = 1e-4): number {
  return perUnit * Math.max(1, c.scale);
}
