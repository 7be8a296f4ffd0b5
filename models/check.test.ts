/**
 * "Check this model" on the micro model against its ONNX export (tools/reference/make_onnx.py,
 * committed in tests/fixtures/micro/onnx/), in onnxruntime-web's wasm build in Node, with our
 * model on tfjs cpu and wasm; and a wrong export is reported as a difference, not as a pass.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { initBackend, type BackendName } from './backend.ts';
import { checkModel } from './check.ts';
import { samplesToMel } from './clip.ts';
import { loadAudio16k } from './audio.ts';
import { loadCheckpoint } from './load.ts';

const dir = new URL('../tests/fixtures/micro/', import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, dir)));
const ort = () => import('onnxruntime-web');
const onnx = { encoder: read('onnx/encoder_model.onnx'), decoder: read('onnx/decoder_model.onnx') };

async function micro() {
  return loadCheckpoint({ config: JSON.parse(new TextDecoder().decode(read('config.json'))), safetensors: read('model.safetensors') });
}

describe('checkModel against the ONNX export (onnxruntime-web, wasm)', () => {
  for (const backend of ['cpu', 'wasm'] as BackendName[]) {
    it(`our model on ${backend} matches on the clean clip`, async () => {
      await initBackend(backend);
      const m = await micro();
      const { mel } = samplesToMel(loadAudio16k(read('clean.wav')), m.config);
      const r = await checkModel(m.model, onnx, mel, m.prompt, { ort: await ort() });
      m.model.dispose();
      console.log(`[check] ${backend}: ${r.summary}`);
      expect(r.ok).toBe(true);
      expect(r.encoder.maxAbs).toBeLessThan(1e-4);
      expect(r.logits.relative).toBeLessThan(1e-4);
      expect(r.topTokens.ours).toEqual(r.topTokens.onnx);
    });
  }

  it('reports a difference when the weights are not the export\'s', async () => {
    await initBackend('cpu');
    const m = await micro();
    // The same export against the model with one weight perturbed.
    const { mel } = samplesToMel(loadAudio16k(read('corrupt.wav')), m.config);
    const other = await loadCheckpoint({
      config: JSON.parse(new TextDecoder().decode(read('config.json'))),
      safetensors: perturb(read('model.safetensors'), 'model.encoder.layer_norm.bias'),
    });
    const r = await checkModel(other.model, onnx, mel, m.prompt, { ort: await ort() });
    m.model.dispose();
    other.model.dispose();
    expect(r.ok).toBe(false);
    expect(r.encoder.maxAbs).toBeGreaterThan(0.05);
    expect(r.summary).toMatch(/differs/);
  });

  it('refuses an export of another shape with a message', async () => {
    await initBackend('cpu');
    const m = await micro();
    await expect(checkModel(m.model, onnx, new Float32Array(10), m.prompt, { ort: await ort() })).rejects.toThrow(/log-mel/);
    m.model.dispose();
  });
});

/** A copy of a safetensors file with one tensor's bytes shifted (values change, layout stays valid). */
function perturb(bytes: Uint8Array, name: string): Uint8Array {
  const out = bytes.slice();
  const headerLen = Number(new DataView(out.buffer).getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(out.subarray(8, 8 + headerLen)));
  const [start, end] = header[name].data_offsets as [number, number];
  const base = 8 + headerLen;
  // F16 values: adding 0x0400 to each raises the exponent by one (doubles the value, 0 stays small).
  const view = new DataView(out.buffer, base + start, end - start);
  for (let i = 0; i + 1 < end - start; i += 2) view.setUint16(i, (view.getUint16(i, true) + 0x0400) & 0xffff, true);
  return out;
}
