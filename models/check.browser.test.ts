/**
 * "Check this model" in Chromium, as the app will call it: our model on WebGPU (our kernels)
 * and on wasm, against the micro model's ONNX export in onnxruntime-web (wasm EP).
 */
import { describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from './backend.ts';
import { checkModel } from './check.ts';
import { samplesToMel } from './clip.ts';
import { loadAudio16k } from './audio.ts';
import { loadCheckpoint } from './load.ts';
import { readRepoFile } from '../tests/util/fixtures.ts';

const DIR = 'tests/fixtures/micro';
const need = async (p: string) => {
  const b = await readRepoFile(`${DIR}/${p}`);
  if (!b) throw new Error(`missing fixture ${DIR}/${p}`);
  return b;
};

describe('checkModel in Chromium', () => {
  for (const backend of ['webgpu', 'wasm'] as BackendName[]) {
    it(`our model on ${backend} matches the ONNX export`, async () => {
      await initBackend(backend);
      const m = await loadCheckpoint({ config: JSON.parse(new TextDecoder().decode(await need('config.json'))), safetensors: await need('model.safetensors') });
      const { mel } = samplesToMel(loadAudio16k(await need('clean.wav')), m.config);
      const onnx = { encoder: await need('onnx/encoder_model.onnx'), decoder: await need('onnx/decoder_model.onnx') };
      const r = await checkModel(m.model, onnx, mel, m.prompt, { ort: await import('onnxruntime-web'), wasmPaths: '/node_modules/onnxruntime-web/dist/' });
      m.model.dispose();
      console.log(`[check] ${backend}: ${r.summary}`);
      expect(r.ok).toBe(true);
      expect(r.logits.relative).toBeLessThan(1e-4);
    });
  }
});
