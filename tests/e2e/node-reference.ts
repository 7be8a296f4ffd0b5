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
