/**
 * Every kind of bad model file, through the real loading path (models/load.ts: config,
 * safetensors, tokenizer, checkCheckpoint): each is refused with its EarshotError code and
 * the exact sentence a person reads, before a single tensor reaches the device.
 * The table lives in tests/util/hostile-checkpoints.ts (the CLI and e2e tests use it too).
 */
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { beforeAll, describe, expect, it } from 'vitest';
import { EarshotError } from '../models/errors.ts';
import { loadCheckpoint } from '../models/load.ts';
import { hostileCheckpoints, microFiles } from './util/hostile-checkpoints.ts';

const cases = hostileCheckpoints();

describe('hostile checkpoints through loadCheckpoint', () => {
  beforeAll(async () => {
    await tf.setBackend('cpu');
  });

  it('the unchanged micro fixture loads (the baseline every case changes one thing of)', async () => {
    const micro = microFiles();
    const loaded = await loadCheckpoint({ config: JSON.parse(micro.config), safetensors: micro.safetensors });
    expect(loaded.config.dModel).toBe(32);
    loaded.model.dispose();
  });

  it('covers each kind of bad file once', () => {
    expect(new Set(cases.map((c) => c.name)).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(18);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const before = tf.memory().numTensors;
    const files = { config: JSON.parse(c.config), safetensors: c.safetensors, ...(c.tokenizer ? { tokenizer: JSON.parse(c.tokenizer) } : {}) };
    const error = await loadCheckpoint(files).then(() => null, (e: unknown) => e);
    expect(error).toBeInstanceOf(EarshotError);
    const e = error as EarshotError;
    expect({ code: e.code, message: e.message }).toEqual({ code: c.code, message: c.message });
    // One line that ends in a full stop; nothing uploaded.
    expect(e.message).not.toMatch(/\n/);
    expect(e.message).toMatch(/\.$/);
    expect(tf.memory().numTensors).toBe(before);
  });
});
