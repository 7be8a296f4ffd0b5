/**
 * The "check-model" worker request: what it accepts across the worker boundary, and the
 * whole request on the micro model against its ONNX export served by a stand-in for this
 * site (demo) and for the hub (fetch stubbed), in Node.
 */
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { initBackend } from '../models/backend.ts';
import { loadAudio16k } from '../models/audio.ts';
import { loadCheckpoint } from '../models/load.ts';
import { checkModelRequest, validateCheckPayload } from './check-request.ts';

const dir = new URL('../tests/fixtures/micro/', import.meta.url);
const read = (p: string) => new Uint8Array(readFileSync(new URL(p, dir)));
const samples = () => new Float32Array(1600).buffer;
/** In Node, onnxruntime-web's Node build (the site's wasm build fetches its .wasm by URL). */
const nodeOrt = () => import('onnxruntime-web');

describe('validateCheckPayload', () => {
  const onnx = { type: 'demo', baseUrl: 'http://localhost:4173/models/demo/' };

  it('accepts each clip and source', () => {
    expect(() => validateCheckPayload({ clip: { type: 'pair' }, onnx })).not.toThrow();
    expect(() => validateCheckPayload({ clip: { type: 'samples', samples: samples() }, onnx })).not.toThrow();
    expect(() => validateCheckPayload({ clip: { type: 'pair' }, onnx: { type: 'hub', repo: 'onnx-community/whisper-tiny', revision: 'main' } })).not.toThrow();
    expect(() => validateCheckPayload({ clip: { type: 'pair' }, onnx: { type: 'files', encoder: new ArrayBuffer(8), decoder: new ArrayBuffer(8), label: 'a + b' } })).not.toThrow();
  });

  const cases: [string, unknown, RegExp][] = [
    ['no payload', null, /no payload/],
    ['an array', [], /no payload/],
    ['no clip', { onnx }, /must name the clip/],
    ['an unknown clip', { clip: { type: 'mic' }, onnx }, /must name the clip/],
    ['samples that are numbers', { clip: { type: 'samples', samples: [0, 1] }, onnx }, /float32 samples/],
    ['samples of odd length', { clip: { type: 'samples', samples: new ArrayBuffer(6) }, onnx }, /float32 samples/],
    ['no samples', { clip: { type: 'samples', samples: new ArrayBuffer(0) }, onnx }, /no samples/],
    ['no source', { clip: { type: 'pair' } }, /where the ONNX export comes from/],
    ['an unknown source', { clip: { type: 'pair' }, onnx: { type: 'cdn' } }, /Unknown ONNX export source "cdn"/],
    ['a demo without a URL', { clip: { type: 'pair' }, onnx: { type: 'demo', baseUrl: 'models/demo/' } }, /absolute URL/],
    ['a hub repo that is a URL', { clip: { type: 'pair' }, onnx: { type: 'hub', repo: 'https://evil.example/x', revision: 'main' } }, /not a Hugging Face repo id/],
    ['a hub repo with ..', { clip: { type: 'pair' }, onnx: { type: 'hub', repo: '../../x', revision: 'main' } }, /not a Hugging Face repo id/],
    ['a hub repo without a revision', { clip: { type: 'pair' }, onnx: { type: 'hub', repo: 'a/b' } }, /revision/],
    ['files without the decoder', { clip: { type: 'pair' }, onnx: { type: 'files', encoder: new ArrayBuffer(8), label: 'x' } }, /bytes of encoder_model\.onnx and decoder_model\.onnx/],
    ['an empty file', { clip: { type: 'pair' }, onnx: { type: 'files', encoder: new ArrayBuffer(8), decoder: new ArrayBuffer(0), label: 'x' } }, /is empty/],
  ];
  for (const [what, payload, message] of cases) {
    it(`refuses ${what} with one sentence`, () => {
      expect(() => validateCheckPayload(payload)).toThrow(message);
    });
  }
});

describe('checkModelRequest on the micro model (Node, tfjs cpu vs onnxruntime-web wasm)', () => {
  afterEach(() => vi.unstubAllGlobals());

  /** A stand-in fetch serving the micro export under `prefix`, 404 elsewhere; records the URLs. */
  function serve(prefix: string, encoder = read('onnx/encoder_model.onnx')) {
    const asked: string[] = [];
    vi.stubGlobal('fetch', async (url: string) => {
      asked.push(url);
      const file = url.startsWith(prefix) ? url.slice(prefix.length) : null;
      const bytes = file === 'onnx/encoder_model.onnx' ? encoder : file === 'onnx/decoder_model.onnx' ? read('onnx/decoder_model.onnx') : null;
      return bytes ? new Response(bytes.slice()) : new Response('Entry not found', { status: 404 });
    });
    return asked;
  }

  async function micro() {
    await initBackend('cpu');
    return loadCheckpoint({ config: JSON.parse(new TextDecoder().decode(read('config.json'))), safetensors: read('model.safetensors') });
  }

  it('agrees on the clean clip, the export from the demo folder and from the hub', async () => {
    const m = await micro();
    const clean = loadAudio16k(read('clean.wav'));
    const demoAsked = serve('http://site.test/models/demo/');
    const stages: string[] = [];
    const r = await checkModelRequest(m, { clip: { type: 'samples', samples: clean.slice().buffer }, onnx: { type: 'demo', baseUrl: 'http://site.test/models/demo/' } }, new AbortController().signal, (p) => stages.push(p.stage), await nodeOrt());
    expect(demoAsked).toEqual(['http://site.test/models/demo/onnx/encoder_model.onnx', 'http://site.test/models/demo/onnx/decoder_model.onnx']);
    expect(r.report.ok).toBe(true);
    expect(r.report.logits.relative).toBeLessThanOrEqual(r.report.tolerance);
    expect(r.positions).toBe(r.report.topTokens.ours.length);
    expect(r.positions).toBeGreaterThan(m.prompt.length);
    expect(stages).toEqual(expect.arrayContaining(['Transcribing the clean clip', 'Downloading onnx/encoder_model.onnx', 'Running the ONNX export (decoder)']));

    const hubAsked = serve('https://huggingface.co/onnx-community/whisper-micro/resolve/main/');
    const h = await checkModelRequest(m, { clip: { type: 'samples', samples: clean.slice().buffer }, onnx: { type: 'hub', repo: 'onnx-community/whisper-micro', revision: '' } }, new AbortController().signal, () => undefined, await nodeOrt());
    expect(hubAsked).toHaveLength(2);
    expect(h.onnxLabel).toBe('onnx-community/whisper-micro');
    expect(h.report.ok).toBe(true);
    m.model.dispose();
  });

  it('says what is wrong: a repo without the export, the decoder as encoder, a cancel, no pair', async () => {
    const m = await micro();
    const clip = () => ({ type: 'samples' as const, samples: loadAudio16k(read('clean.wav')).buffer as ArrayBuffer });
    const signal = new AbortController().signal;
    serve('https://huggingface.co/onnx-community/whisper-micro/resolve/main/');
    await expect(checkModelRequest(m, { clip: clip(), onnx: { type: 'hub', repo: 'openai/whisper-micro', revision: 'main' } }, signal, () => undefined, await nodeOrt())).rejects.toThrow(
      /openai\/whisper-micro has no onnx\/encoder_model\.onnx \(HTTP 404\)/,
    );
    serve('http://site.test/models/demo/', read('onnx/decoder_model.onnx'));
    await expect(checkModelRequest(m, { clip: clip(), onnx: { type: 'demo', baseUrl: 'http://site.test/models/demo/' } }, signal, () => undefined, await nodeOrt())).rejects.toThrow(
      /encoder_model\.onnx has no input "input_features"/,
    );
    serve('http://site.test/models/demo/', read('model.safetensors').slice(0, 5000));
    await expect(checkModelRequest(m, { clip: clip(), onnx: { type: 'demo', baseUrl: 'http://site.test/models/demo/' } }, signal, () => undefined, await nodeOrt())).rejects.toThrow(
      /could not load encoder_model\.onnx/,
    );
    const cancelled = new AbortController();
    cancelled.abort();
    await expect(checkModelRequest(m, { clip: clip(), onnx: { type: 'demo', baseUrl: 'http://site.test/models/demo/' } }, cancelled.signal, () => undefined, await nodeOrt())).rejects.toMatchObject({ code: 'cancelled' });
    await expect(checkModelRequest(m, { clip: { type: 'pair' }, onnx: { type: 'demo', baseUrl: 'http://site.test/models/demo/' } }, signal, () => undefined, await nodeOrt())).rejects.toThrow(/not prepared/);
    m.model.dispose();
  });
});
