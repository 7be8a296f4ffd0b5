import * as tf from '@tensorflow/tfjs-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initBackend } from '../models/backend.ts';
import { loadFixture, type Fixture } from '../tests/parity/parity-core.ts';
import { rivalToken } from './foil.ts';

let f: Fixture;

beforeAll(async () => {
  await initBackend('wasm');
  f = await loadFixture();
});
afterAll(() => f?.loaded.model.dispose());

describe('rivalToken', () => {
  it("is the corrupted run's top token once the target is excluded", async () => {
    const model = f.loaded.model;
    const c = model.config;
    const mel = f.golden.getF32('logmel.corrupt');
    const prompt = f.meta.greedy.clean.prompt;
    const { logits } = model.decode(tf.tensor2d([prompt], [1, prompt.length], 'int32'), model.crossKV(model.encode(tf.tensor3d(mel, [1, c.numMelBins, 2 * c.maxSourcePositions]))), undefined, { lastOnly: true });
    const row = Array.from(await logits.data());
    logits.dispose();
    const order = row.map((v, i) => [v, i]).sort((a, b) => b[0] - a[0]).map((x) => x[1]);
    // Excluding the run's own top token gives its second; excluding another gives its first.
    expect(await rivalToken(model, mel, prompt, order[0])).toBe(order[1]);
    expect(await rivalToken(model, mel, prompt, order[1])).toBe(order[0]);
  });
});
