/**
 * The preallocated KV cache against concatenated past/present: the same greedy steps give
 * the same logits on cpu and wasm (in-place writes into the cache's own memory), the cache
 * tensors are the same objects every step (nothing is reallocated), and a step allocates no
 * tensor that outlives it.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import { initBackend, type BackendName } from './backend.ts';
import { disposeKV } from './decode.ts';
import { KVCache } from './kv-cache.ts';
import { loadCheckpoint } from './load.ts';
import type { KV } from './whisper.ts';

const dir = new URL('../tests/fixtures/micro/', import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, dir)));

describe('KVCache', () => {
  for (const backend of ['cpu', 'wasm'] as BackendName[]) {
    it(`${backend}: steps with the preallocated cache equal steps with concatenated past`, async () => {
      await initBackend(backend);
      const { model, config: c, prompt } = await loadCheckpoint({ config: JSON.parse(new TextDecoder().decode(read('config.json'))), safetensors: read('model.safetensors') });
      const mel = tf.randomNormal([1, c.numMelBins, 2 * c.maxSourcePositions], 0, 1, 'float32', 3) as tf.Tensor3D;
      const enc = model.encode(mel);
      const cross = model.crossKV(enc);
      const cache = new KVCache(c, 1, 16);
      const firstK = cache.layer(0).k;
      let past: KV[] | undefined;
      const feeds = [prompt, [220], [1000], [50257]];
      for (const feed of feeds) {
        const tokens = tf.tensor2d([feed], [1, feed.length], 'int32');
        const before = tf.memory().numTensors;
        const a = model.decode(tokens, cross, undefined, { cache, lastOnly: true });
        // The step's only new tensor is its logits.
        expect(tf.memory().numTensors - before).toBe(1);
        const b = model.decode(tokens, cross, undefined, { past, lastOnly: true });
        disposeKV(past);
        past = b.present;
        const [x, y] = [await a.logits.data(), await b.logits.data()];
        let err = 0;
        for (let i = 0; i < x.length; i++) err = Math.max(err, Math.abs(x[i] - y[i]));
        expect(err).toBeLessThan(1e-5);
        tf.dispose([tokens, a.logits, b.logits]);
      }
      expect(cache.length).toBe(prompt.length + 3);
      expect(cache.layer(0).k).toBe(firstK);
      disposeKV(past);
      disposeKV(cross);
      cache.dispose();
      tf.dispose([mel, enc]);
      model.dispose();
    });
  }
});
