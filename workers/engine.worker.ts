/**
 * The engine worker: owns the tensor backend and one loaded model, answers the requests
 * of workers/protocol.ts. Thin on purpose: the model code lives in models/, experiments
 * in lab/; this file only routes messages, reports progress and turns failures into
 * messages a person can act on.
 *
 * Requests run one at a time in arrival order (a transcription never sees a model being
 * swapped under it); `cancel` is handled at once, outside that queue.
 */
import * as tf from '@tensorflow/tfjs-core';
import { chooseBrowserBackend, initBackend, type BackendName } from '../models/backend.ts';
import { samplesToMel, windowSeconds } from '../models/clip.ts';
import { greedyDecode } from '../models/decode.ts';
import { EarshotError } from '../models/errors.ts';
import { fallBackToWasm, runBatchesWithFallback, watchDevice } from '../models/device-loss.ts';
import { loadCheckpoint, type CheckpointFiles, type LoadedModel } from '../models/load.ts';
import { throwIfAborted } from './fetch-file.ts';
import type {
  BackendReport,
  EngineRequest,
  EngineResponse,
  ErrorPayload,
  ModelInfo,
  ProgressPayload,
  RequestPayloads,
  ResultPayloads,
  Transcript,
} from './protocol.ts';
import * as lab from './lab-requests.ts';
import { checkModelRequest } from './check-request.ts';
import { isOutOfMemory } from '../lab/sweep.ts';
import { gatherCheckpoint } from './sources.ts';

const scope = self as unknown as DedicatedWorkerGlobalScope;

let backend: BackendReport | null = null;
/** `files`: the checkpoint's bytes, kept on WebGPU so a lost device can be survived without a download. */
let current: { loaded: LoadedModel; info: ModelInfo; files?: CheckpointFiles } | null = null;

/** Abort handles of queued and running requests, by id. */
const controllers = new Map<number, AbortController>();
let queue: Promise<void> = Promise.resolve();

scope.onmessage = (event: MessageEvent<EngineRequest>) => {
  const request = event.data;
  if (request.kind === 'cancel') {
    const target = controllers.get(request.payload.target);
    target?.abort();
    post({ kind: 'result', id: request.id, payload: { cancelled: target !== undefined } });
    return;
  }
  const controller = new AbortController();
  controllers.set(request.id, controller);
  queue = queue.then(() => run(request, controller.signal)).finally(() => controllers.delete(request.id));
};

type Request = Exclude<EngineRequest, { kind: 'cancel' }>;
type Answer = { payload: ResultPayloads[Request['kind']]; transfer?: Transferable[] };

async function run(request: Request, signal: AbortSignal): Promise<void> {
  const progress = (p: ProgressPayload) => post({ kind: 'progress', id: request.id, payload: p });
  try {
    throwIfAborted(signal);
    if (request.kind !== 'init') await recoverIfDeviceLost(progress);
    const { payload, transfer } = await answerSurvivingDeviceLoss(request, signal, progress);
    post({ kind: 'result', id: request.id, payload }, transfer);
  } catch (e) {
    post({ kind: 'error', id: request.id, payload: toErrorPayload(e, request.kind) });
    if (isWasmAbort(e)) restartAfterAbort();
  }
}

/**
 * A WebGPU device lost while a request runs: its answer may be an error or numbers read from a
 * dead device, so it is dropped, the model moves to wasm and the request runs again there, as
 * one batch of runBatchesWithFallback (models/device-loss.ts). Sweeps do this themselves, batch
 * by batch, keeping the finished batches.
 */
async function answerSurvivingDeviceLoss(request: Request, signal: AbortSignal, progress: (p: ProgressPayload) => void): Promise<Answer> {
  if (request.kind === 'init' || request.kind === 'sweep') return answerOf(request, signal, progress);
  const [answer] = await runBatchesWithFallback([request], (r) => answerOf(r, signal, progress), {
    wasm: wasmOptions(),
    // A sentence for the user is the request's own answer, not a symptom of the loss.
    isOwnError: (e) => e instanceof EarshotError,
    recover: (reason) => continueOnWasm(reason, progress),
  });
  return answer;
}

/** The request's answer (and what to transfer with it). */
async function answerOf(request: Request, signal: AbortSignal, progress: (p: ProgressPayload) => void): Promise<Answer> {
  switch (request.kind) {
    case 'init':
      return { payload: await ensureBackend(request.payload.backend) };
    case 'load-model':
      return { payload: await loadModel(request.payload, signal, progress) };
    case 'transcribe':
      return { payload: await transcribe(request.payload, signal, progress) };
    case 'logmel': {
      const image = lab.melImage(current?.loaded ?? null, request.payload);
      return { payload: image, transfer: [image.mel] };
    }
    case 'white-noise': {
      const noise = lab.whiteNoise(request.payload);
      return { payload: noise, transfer: [noise.samples] };
    }
    case 'tokenize':
      return { payload: lab.tokenize(loadedModel(), request.payload) };
    case 'prepare-pair':
      return { payload: await lab.preparePair(loadedModel(), request.payload, signal, progress) };
    case 'set-target':
      return { payload: await lab.setTarget(loadedModel(), request.payload) };
    case 'sweep':
      return { payload: await lab.sweep(loadedModel(), request.payload, signal, progress, { rebuild: rebuildOnWasm, wasm: wasmOptions() }) };
    case 'grounding':
      return { payload: await lab.grounding(loadedModel(), request.payload) };
    case 'listen-vs-guess':
      return { payload: await lab.listenGuess(loadedModel(), request.payload) };
    case 'lens':
      return { payload: await lab.lenses(loadedModel()) };
    case 'attribution':
      return { payload: await lab.attribution(loadedModel(), request.payload) };
    case 'attention': {
      const report = await lab.attention(loadedModel());
      return { payload: report, transfer: [report.weights] };
    }
    case 'check-model':
      return { payload: await checkModelRequest(loadedModel(), request.payload, signal, progress) };
    default: {
      const never: never = request;
      throw new EarshotError(`Unknown request ${JSON.stringify(never)}.`, 'bad-request');
    }
  }
}

async function ensureBackend(override?: BackendName): Promise<BackendReport> {
  if (backend) return backend;
  const choice = await chooseBrowserBackend(override ? { force: override } : {});
  try {
    const info = await initBackend(choice.name, wasmOptions());
    backend = { name: choice.name, reason: choice.reason, detail: info.reason ?? choice.name, crossOriginIsolated: scope.crossOriginIsolated };
    watchDevice(); // from now on, a lost WebGPU device is noticed (models/device-loss.ts)
  } catch (e) {
    if (choice.name === 'wasm') throw e;
    // A forced or detected WebGPU that will not start: say so and run on WASM.
    const info = await initBackend('wasm', wasmOptions());
    backend = {
      name: 'wasm',
      reason: `${choice.name} failed to start (${e instanceof Error ? e.message : String(e)}); using wasm`,
      detail: info.reason ?? 'wasm',
      crossOriginIsolated: scope.crossOriginIsolated,
    };
  }
  return backend;
}

/**
 * WASM threads need cross-origin isolation (SharedArrayBuffer); ask for one per core, at
 * most 4, leaving the rest to the page. Note: tfjs-backend-wasm 4.22 still reports (and,
 * measured here, runs) one XNNPACK thread whatever is asked (tensorflow/tfjs#8513).
 */
function wasmOptions(): { threads?: number } {
  if (!scope.crossOriginIsolated) return {};
  return { threads: Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) };
}

async function loadModel(
  { source }: RequestPayloads['load-model'],
  signal: AbortSignal,
  progress: (p: ProgressPayload) => void,
): Promise<ModelInfo> {
  await ensureBackend();
  const started = performance.now();
  const gathered = await gatherCheckpoint(source, signal, progress);
  throwIfAborted(signal);
  progress({ done: 0, total: 0, stage: 'Uploading weights to the backend' });
  const loaded = await loadCheckpoint(gathered.files);
  if (signal.aborted) {
    loaded.model.dispose();
    throwIfAborted(signal);
  }
  const c = loaded.config;
  const info: ModelInfo = {
    label: gathered.label,
    source: source.type,
    randomWeights: source.type === 'demo',
    summary: {
      encoderLayers: c.encoderLayers,
      decoderLayers: c.decoderLayers,
      dModel: c.dModel,
      vocabSize: c.vocabSize,
      numMelBins: c.numMelBins,
      windowSeconds: windowSeconds(c),
      multilingual: loaded.special.multilingual,
    },
    hasTokenizer: loaded.tokenizer !== null,
    prompt: loaded.prompt,
    weightBytes: gathered.files.safetensors.byteLength,
    fromCache: gathered.fromCache,
    loadMs: performance.now() - started,
  };
  if (gathered.cacheError) info.cacheError = gathered.cacheError;
  // Swap only once the new model works, so a failed load leaves the old one usable.
  lab.forgetPair();
  current?.loaded.model.dispose();
  current = { loaded, info, files: backend?.name === 'webgpu' ? gathered.files : undefined };
  return info;
}

/**
 * After the WebGPU device was lost: wasm becomes the backend and the model is built again
 * there from the bytes kept at load (no download). The pair is rebuilt by the caller.
 */
async function rebuildOnWasm(reason: string): Promise<{ loaded: LoadedModel | null; backend: BackendReport }> {
  const info = await fallBackToWasm(wasmOptions());
  backend = {
    name: 'wasm',
    reason: `the WebGPU device was lost (${reason.replace(/\.$/, '')}); switched to WASM, which is slower`,
    detail: info.reason ?? 'wasm',
    crossOriginIsolated: scope.crossOriginIsolated,
  };
  if (!current?.files) {
    // Nothing to rebuild from (no model yet): the next load happens on wasm.
    if (current) {
      lab.forgetPair();
      current = null;
    }
    return { loaded: null, backend };
  }
  const loaded = await loadCheckpoint(current.files);
  try {
    current.loaded.model.dispose();
  } catch {
    // Tensors of the lost device.
  }
  current = { loaded, info: current.info };
  return { loaded, backend };
}

/** A device lost between requests: move to wasm (model and pair rebuilt) before this request runs. */
async function recoverIfDeviceLost(progress: (p: ProgressPayload) => void): Promise<void> {
  const watch = watchDevice();
  if (watch?.lost) await continueOnWasm(watch.reason ?? 'lost', progress);
}

/** After a lost device: the model and the pair rebuilt on wasm, and the page told why. */
async function continueOnWasm(reason: string, progress: (p: ProgressPayload) => void): Promise<void> {
  const { loaded, backend: report } = await rebuildOnWasm(reason);
  if (loaded) await lab.rebuildPair(loaded);
  progress({ done: 0, total: 0, stage: 'The GPU was lost: continuing on WASM', backend: report });
}

function loadedModel(): LoadedModel {
  if (!current) throw new EarshotError('No model is loaded yet; load one first.', 'no-model');
  return current.loaded;
}

async function transcribe(
  { samples, label }: RequestPayloads['transcribe'],
  signal: AbortSignal,
  progress: (p: ProgressPayload) => void,
): Promise<Transcript> {
  if (!current) throw new EarshotError('No model is loaded yet; load one first.', 'no-model');
  const { loaded, info } = current;
  const c = loaded.config;
  const started = performance.now();
  progress({ done: 0, total: 2, stage: 'Computing the log-mel spectrogram' });
  const clip = samplesToMel(new Float32Array(samples), c, { trim: true, label });
  const melDone = performance.now();
  throwIfAborted(signal);
  progress({ done: 1, total: 2, stage: 'Decoding' });
  const mel = tf.tensor3d(clip.mel, [1, c.numMelBins, 2 * c.maxSourcePositions]);
  let tokens: number[];
  try {
    tokens = await greedyDecode(loaded.model, mel, { prompt: loaded.prompt, eot: loaded.special.eot });
  } finally {
    mel.dispose();
  }
  // greedyDecode has no abort hook; a cancel that arrived meanwhile still wins.
  throwIfAborted(signal);
  const finished = performance.now();
  return {
    tokens,
    text: loaded.tokenizer ? loaded.tokenizer.decode(tokens) : null,
    prompt: loaded.prompt,
    seconds: clip.seconds,
    trimmed: clip.trimmed,
    timing: { melMs: melDone - started, decodeMs: finished - melDone, totalMs: finished - started },
    backend: backend?.name ?? (tf.getBackend() as BackendName),
    model: info.label,
  };
}

/** Any failure → one line for the UI. EarshotErrors already are; anything else gets context. */
/**
 * tfjs-wasm aborts its module when the heap cannot grow (out of memory; measured: a sweep
 * with a huge batch on a whisper-tiny-shaped model, "Aborted()" at ~4 GB), and every later
 * op fails the same way. Only a fresh worker has a working module again.
 */
function isWasmAbort(e: unknown): boolean {
  return e instanceof Error && e.name === 'RuntimeError' && /^Aborted\(/.test(e.message);
}

const WASM_ABORTED = 'The engine ran out of memory (its WASM heap could not grow); try fewer positions or a smaller model.';

/** An uncaught error makes the page restart this worker (app/engine-client.svelte.ts). */
function restartAfterAbort(): void {
  setTimeout(() => {
    throw new Error('it ran out of memory: its WASM heap could not grow; try fewer positions or a smaller model');
  });
}

function toErrorPayload(e: unknown, kind: EngineRequest['kind']): ErrorPayload {
  if (e instanceof EarshotError) return { message: e.message, code: e.code ?? 'error' };
  if (isWasmAbort(e)) return { message: WASM_ABORTED, code: 'out-of-memory' };
  const detail = firstLine(e instanceof Error ? e.message : String(e));
  const doing: Record<EngineRequest['kind'], string> = {
    init: 'starting the engine',
    'load-model': 'loading the model',
    transcribe: 'transcribing',
    cancel: 'cancelling',
    logmel: 'computing the spectrogram',
    'white-noise': 'making white noise',
    tokenize: 'tokenizing',
    'prepare-pair': 'preparing the pair',
    'set-target': 'setting the target',
    sweep: 'running the sweep',
    grounding: 'computing the grounding coefficient',
    'listen-vs-guess': 'computing listen-vs-guess',
    lens: 'computing the lenses',
    attribution: 'running attribution patching',
    attention: 'reading cross-attention',
    'check-model': 'checking the model against its ONNX export',
  };
  const what = doing[kind];
  if (isOutOfMemory(e)) return { message: `The engine ran out of memory while ${what}; try fewer positions or a smaller model.`, code: 'out-of-memory' };
  console.error(`Earshot engine: unexpected failure while ${what}`, e);
  return { message: `Something went wrong while ${what}: ${detail}. Try again; if it keeps happening, reload the page.`, code: 'internal' };
}

function firstLine(text: string): string {
  const line = text.split('\n')[0].trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line || 'no details';
}

function post(message: EngineResponse, transfer: Transferable[] = []): void {
  scope.postMessage(message, transfer);
}
