/**
 * What the browser should show, computed in Node with the same engine code (models/) on
 * the tfjs WASM backend: the expected values come from the code under test run a second
 * way, never from numbers pasted into the test.
 */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend } from '../../models/backend.ts';
import { clipToMel } from '../../models/wav-clip.ts';
import { greedyDecode } from '../../models/decode.ts';
import { loadCheckpoint } from '../../models/load.ts';
import { samplesToMel } from '../../models/clip.ts';
import { rivalToken } from '../../lab/foil.ts';
import { pathwayGrounding, type PathwayGrounding } from '../../lab/grounding.ts';
import { PatchLab, type SweepResult } from '../../lab/sweep.ts';
import { chooseTarget, transcribePair } from '../../lab/target.ts';
import { fromPcm16 } from '../../app/clip.ts';
import { sweepSpecs, type Settings } from '../../app/experiment.ts';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MICRO_DIR = resolve(repoRoot, 'tests/fixtures/micro');

export interface NodeTranscript {
  tokens: number[];
  seconds: number;
}

/** Greedy transcription of a WAV file by a model folder, in Node on tfjs-backend-wasm. */
export async function transcribeInNode(modelDir: string, wavPath: string): Promise<NodeTranscript> {
  await initBackend('wasm');
  const loaded = await loadCheckpoint({
    config: JSON.parse(await readFile(resolve(modelDir, 'config.json'), 'utf8')),
    safetensors: new Uint8Array(await readFile(resolve(modelDir, 'model.safetensors'))),
  });
  const c = loaded.config;
  const clip = clipToMel(new Uint8Array(await readFile(wavPath)), c, { label: wavPath });
  const mel = tf.tensor3d(clip.mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
  try {
    const tokens = await greedyDecode(loaded.model, mel, { prompt: loaded.prompt, eot: loaded.special.eot });
    return { tokens, seconds: clip.seconds };
  } finally {
    mel.dispose();
    loaded.model.dispose();
  }
}

// ───────────────────────────── the lab, in Node ─────────────────────────────

export interface NodeLabRun {
  transcripts: { clean: number[]; corrupt: number[] };
  choice: { prefix: number[]; target: number; foil: number };
  encoderPositions: number;
  bins: SweepResult;
  layers: SweepResult;
  grounding: PathwayGrounding;
}

/**
 * The experiment the page runs, run in Node with lab/ on the same PCM16 audio: transcripts,
 * the default target/foil (first differing token; with identical transcripts, the corrupted
 * run's best rival to the clean first token), both sweeps and the grounding coefficient.
 */
export async function labInNode(clean: Int16Array, corrupt: Int16Array, settings: Settings, choice?: NodeLabRun['choice']): Promise<NodeLabRun> {
  await initBackend('wasm');
  const loaded = await loadCheckpoint({
    config: JSON.parse(await readFile(resolve(MICRO_DIR, 'config.json'), 'utf8')),
    safetensors: new Uint8Array(await readFile(resolve(MICRO_DIR, 'model.safetensors'))),
  });
  const c = loaded.config;
  try {
    const a = samplesToMel(fromPcm16(clean), c, { trim: true });
    const b = samplesToMel(fromPcm16(corrupt), c, { trim: true });
    const t = await transcribePair(loaded.model, a.mel, b.mel, loaded.prompt);
    let chosen = choice;
    if (!chosen) {
      try {
        const x = chooseTarget(loaded.prompt, t.clean, t.corrupt, loaded.special.eot);
        chosen = { prefix: x.prefix, target: x.target, foil: x.foil };
      } catch {
        const target = t.clean[0] ?? loaded.special.eot;
        chosen = { prefix: [...loaded.prompt], target, foil: await rivalToken(loaded.model, b.mel, loaded.prompt, target) };
      }
    }
    const encoderPositions = Math.min(c.maxSourcePositions, Math.ceil(Math.max(a.seconds, b.seconds) / 0.02 - 1e-9));
    const lab = await PatchLab.create(loaded.model, { cleanMel: a.mel, corruptMel: b.mel, ...chosen });
    try {
      const specs = sweepSpecs(settings, { encoderLayers: c.encoderLayers, decoderLayers: c.decoderLayers }, encoderPositions);
      return {
        transcripts: t,
        choice: chosen,
        encoderPositions,
        bins: await lab.sweep(specs.bins),
        layers: await lab.sweep(specs.layers),
        grounding: await pathwayGrounding(lab, settings.metric),
      };
    } finally {
      lab.dispose();
    }
  } finally {
    loaded.model.dispose();
  }
}

/** The samples of a PCM16 mono WAV file, as stored (no conversion). */
export async function wavPcm16(path: string): Promise<Int16Array> {
  const bytes = await readFile(path);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 12; at + 8 <= bytes.length; ) {
    const id = bytes.toString('ascii', at, at + 4);
    const size = v.getUint32(at + 4, true);
    if (id === 'data') return new Int16Array(bytes.buffer.slice(bytes.byteOffset + at + 8, bytes.byteOffset + at + 8 + size));
    at += 8 + size + (size % 2);
  }
  throw new Error(`${path} has no data chunk`);
}
