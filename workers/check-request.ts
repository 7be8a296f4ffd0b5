/**
 * The engine worker's "check-model" request: fetch the loaded checkpoint's official ONNX
 * export (this site's demo export, a hub repo through Cache Storage, or the two files the
 * person picked), then models/check.ts runs it in onnxruntime-web and compares it with our
 * hooked model on the clean clip. Thin: the comparison lives in models/check.ts.
 *
 * onnxruntime-web runs on its 'wasm' execution provider, single-threaded, from the
 * `onnxruntime-web/wasm` build (CPU only, 14 MB of .wasm rather than the 28 MB WebGPU one):
 * a CPU implementation that shares nothing with our WebGPU kernels or tfjs' backends, so
 * agreement says something about those, and it works on every device. One thread, because
 * onnxruntime's threads are workers it starts from its own script URL, which a bundled
 * worker chunk does not provide; the check is a one-off pass, so the time matters little.
 * The .wasm is this site's own file (Vite emits it; `?url` gives its address), never a CDN.
 */
import * as tf from '@tensorflow/tfjs-core';
import { checkModel, type OnnxExport } from '../models/check.ts';
import { samplesToMel } from '../models/clip.ts';
import { greedyDecode } from '../models/decode.ts';
import { EarshotError, isEarshotError } from '../models/errors.ts';
import type { LoadedModel } from '../models/load.ts';
import { fetchFile, throwIfAborted } from './fetch-file.ts';
import { preparedClean } from './lab-requests.ts';
import type { ModelCheckResult, OnnxSource, ProgressPayload, RequestPayloads } from './protocol.ts';
import { REPO_ID, hubFileUrl } from './sources.ts';

type Payload = RequestPayloads['check-model'];
type OnProgress = (p: ProgressPayload) => void;

/** The export's two files, as onnx-community lays them out. */
export const ONNX_FILES = { encoder: 'onnx/encoder_model.onnx', decoder: 'onnx/decoder_model.onnx' } as const;

/** Decoder positions compared at most (prompt + transcript): enough to see the top tokens agree. */
export const MAX_CHECK_POSITIONS = 64;

const bad = (message: string) => new EarshotError(message, 'bad-request');
const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);

/** Checks what crosses the worker boundary; anything else gets one sentence naming the problem. */
export function validateCheckPayload(payload: unknown): Payload {
  if (!isRecord(payload)) throw bad('The check request has no payload.');
  const { clip, onnx } = payload;
  if (!isRecord(clip) || (clip.type !== 'samples' && clip.type !== 'pair')) throw bad('The check request must name the clip: the clean clip\'s samples or the prepared pair.');
  if (clip.type === 'samples') {
    if (!(clip.samples instanceof ArrayBuffer) || clip.samples.byteLength % 4 !== 0) throw bad('The clean clip must be float32 samples.');
    if (clip.samples.byteLength === 0) throw new EarshotError('The clean clip has no samples; record or choose one first.', 'empty-audio');
  }
  if (!isRecord(onnx)) throw bad('The check request must say where the ONNX export comes from.');
  switch (onnx.type) {
    case 'demo':
      if (typeof onnx.baseUrl !== 'string' || !URL.canParse(onnx.baseUrl)) throw bad('The demo export needs the absolute URL of this site\'s models/demo/ folder.');
      break;
    case 'hub':
      if (typeof onnx.repo !== 'string' || !REPO_ID.test(onnx.repo.trim())) {
        throw new EarshotError(`"${typeof onnx.repo === 'string' ? onnx.repo : ''}" is not a Hugging Face repo id; write it as owner/name, e.g. onnx-community/whisper-tiny.`, 'bad-repo-id');
      }
      if (typeof onnx.revision !== 'string') throw bad('The hub export needs a revision (e.g. main).');
      break;
    case 'files':
      if (!(onnx.encoder instanceof ArrayBuffer) || !(onnx.decoder instanceof ArrayBuffer) || typeof onnx.label !== 'string') throw bad('Local ONNX files must be the bytes of encoder_model.onnx and decoder_model.onnx.');
      if (onnx.encoder.byteLength === 0 || onnx.decoder.byteLength === 0) throw new EarshotError('One of the picked ONNX files is empty; pick encoder_model.onnx and decoder_model.onnx of the export.', 'empty-file');
      break;
    default:
      throw bad(`Unknown ONNX export source ${JSON.stringify(onnx.type)}.`);
  }
  return payload as unknown as Payload;
}

/** `ort`: an onnxruntime-web module to use instead of the site's wasm build (Node tests pass the Node build). */
export async function checkModelRequest(loaded: LoadedModel, raw: unknown, signal: AbortSignal, progress: OnProgress, ort?: unknown): Promise<ModelCheckResult> {
  const payload = validateCheckPayload(raw);
  const c = loaded.config;
  const maxPositions = Math.min(MAX_CHECK_POSITIONS, c.maxTargetPositions);

  // The clip and the decoder prefix (the prompt and our transcript, teacher-forced).
  let mel: Float32Array;
  let tokens: number[];
  let clip: string;
  if (payload.clip.type === 'pair') {
    const prepared = preparedClean(loaded);
    if (!prepared) throw new EarshotError('The pair is not prepared for this model any more; set both clips again, or check on the clean clip alone.', 'no-pair');
    ({ mel, tokens } = prepared);
    clip = 'the prepared pair\'s clean clip';
  } else {
    mel = samplesToMel(new Float32Array(payload.clip.samples), c, { trim: true, label: 'The clean clip' }).mel;
    progress({ done: 0, total: 0, stage: 'Transcribing the clean clip' });
    const melT = tf.tensor3d(mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
    try {
      const newTokens = await greedyDecode(loaded.model, melT, { prompt: loaded.prompt, eot: loaded.special.eot, maxNewTokens: maxPositions - loaded.prompt.length, signal });
      tokens = [...loaded.prompt, ...newTokens];
    } finally {
      melT.dispose();
    }
    clip = 'the clean clip';
  }
  const prefix = tokens.slice(0, maxPositions);
  throwIfAborted(signal);

  const { onnx, label, fromCache } = await gatherOnnx(payload.onnx, signal, progress);
  throwIfAborted(signal);
  const report = await checkModel(loaded.model, onnx, mel, prefix, {
    ort: ort ?? (await loadOrt()),
    executionProvider: 'wasm',
    signal,
    onProgress: (stage) => progress({ done: 0, total: 0, stage }),
  });
  return { report, onnxLabel: label, clip, positions: prefix.length, fromCache };
}

async function gatherOnnx(source: OnnxSource, signal: AbortSignal, progress: OnProgress): Promise<{ onnx: OnnxExport; label: string; fromCache: boolean }> {
  if (source.type === 'files') {
    return { onnx: { encoder: new Uint8Array(source.encoder), decoder: new Uint8Array(source.decoder) }, label: source.label, fromCache: false };
  }
  const repo = source.type === 'hub' ? source.repo.trim() : '';
  const revision = source.type === 'hub' ? source.revision.trim() || 'main' : '';
  const label = source.type === 'hub' ? (revision === 'main' ? repo : `${repo}@${revision}`) : 'this site\'s export of the demo model';
  const get = async (file: string) => {
    const url = source.type === 'hub' ? hubFileUrl(repo, revision, file) : new URL(file, source.baseUrl).href;
    try {
      const got = await fetchFile(url, {
        what: source.type === 'hub' ? `${file} of ${label}` : `the demo model's ${file}`,
        signal,
        useCache: source.type === 'hub',
        onProgress: (done, total) => progress({ done, total, stage: `Downloading ${file}` }),
      });
      return got!;
    } catch (e) {
      if (isEarshotError(e, 'http-404')) {
        throw new EarshotError(
          source.type === 'hub'
            ? `${label} has no ${file} (HTTP 404): type the repo that holds this checkpoint's ONNX export in the onnx-community layout (e.g. onnx-community/whisper-tiny), or pick the two files.`
            : `This site does not serve the demo model's ${file} (HTTP 404); pick the two .onnx files instead.`,
          'http-404',
        );
      }
      throw e;
    }
  };
  // One after the other: the small encoder first, so a wrong repo fails before the big decoder.
  const encoder = await get(ONNX_FILES.encoder);
  const decoder = await get(ONNX_FILES.decoder);
  return { onnx: { encoder: encoder.bytes, decoder: decoder.bytes }, label, fromCache: encoder.fromCache && decoder.fromCache };
}

let ortModule: Promise<unknown> | null = null;

/** onnxruntime-web's CPU build, with its .wasm from this site and one thread (see the header). */
function loadOrt(): Promise<unknown> {
  ortModule ??= Promise.all([import('onnxruntime-web/wasm'), import('onnxruntime-web/ort-wasm-simd-threaded.wasm?url')]).then(([ort, wasm]) => {
    ort.env.wasm.numThreads = 1;
    ort.env.wasm.wasmPaths = { wasm: wasm.default };
    return ort;
  });
  // A failed import (e.g. the .wasm blocked) may succeed on a later try.
  ortModule.catch(() => (ortModule = null));
  return ortModule;
}
