/**
 * The engine worker's message protocol: the one place that defines what crosses the
 * boundary between the UI (main thread) and the engine (Web Worker).
 *
 * Every request is `{kind, id, payload}`; the worker answers each with exactly one
 * `result` or `error` carrying the same id, and may send any number of `progress`
 * messages before that. Big binary data (audio, weights) crosses as transferred
 * ArrayBuffers, never as arrays of numbers.
 *
 * Types only, plus two constants: importing this file pulls no engine code into the UI.
 */
import type { BackendName } from '../models/backend.ts';

/** The engine takes audio as mono samples at this rate (models/clip.ts SAMPLE_RATE). */
export const ENGINE_SAMPLE_RATE = 16_000;

/** Cache Storage bucket for files downloaded from the Hugging Face hub. */
export const HUB_CACHE_NAME = 'earshot-hub-v1';

// ---------------------------------------------------------------------------------------------
// Requests

/** Where a checkpoint comes from. */
export type ModelSource =
  /**
   * The random-weight micro model this site serves at `models/demo/`. `baseUrl` is that
   * folder's absolute URL: the worker cannot work it out, because its own URL differs
   * between the dev server and a build.
   */
  | { type: 'demo'; baseUrl: string }
  /** A Hugging Face repo, fetched from `https://huggingface.co/<repo>/resolve/<revision>/<file>`. */
  | { type: 'hub'; repo: string; revision: string }
  /**
   * Files the person picked: the texts of config.json and (optional) tokenizer.json,
   * and the bytes of model.safetensors (transferred). `label` names them in messages.
   */
  | { type: 'files'; config: string; safetensors: ArrayBuffer; tokenizer?: string; label: string };

export interface RequestPayloads {
  /** Choose and start the tensor backend. `backend` overrides the choice (`?backend=` in the page URL). */
  init: { backend?: BackendName };
  /** Load a checkpoint; on success it replaces the current model, on failure the old one stays. */
  'load-model': { source: ModelSource };
  /** Greedy transcription of mono 16 kHz float32 samples (a transferred Float32Array buffer). */
  transcribe: { samples: ArrayBuffer; label: string };
  /** Cancel the request with id `target` (queued or running); a no-op once it has answered. */
  cancel: { target: number };
}

export type RequestKind = keyof RequestPayloads;

export type EngineRequest = { [K in RequestKind]: { kind: K; id: number; payload: RequestPayloads[K] } }[RequestKind];

// ---------------------------------------------------------------------------------------------
// Results

export interface BackendReport {
  name: BackendName;
  /** Why this backend was chosen, in words (e.g. "only a fallback/software WebGPU adapter …"). */
  reason: string;
  /** What the backend reports about itself once running (adapter, SIMD, threads). */
  detail: string;
  /** Whether the worker is cross-origin isolated (needed for multi-threaded WASM). */
  crossOriginIsolated: boolean;
}

export interface ModelSummary {
  encoderLayers: number;
  decoderLayers: number;
  dModel: number;
  vocabSize: number;
  numMelBins: number;
  /** Seconds of audio the model hears at once (30 for released checkpoints). */
  windowSeconds: number;
  multilingual: boolean;
}

export interface ModelInfo {
  /** What to call the model in the UI: "demo", "openai/whisper-tiny@main", file names. */
  label: string;
  source: ModelSource['type'];
  /** True for the random-weight demo model, whose outputs mean nothing. */
  randomWeights: boolean;
  summary: ModelSummary;
  hasTokenizer: boolean;
  /** The transcription prompt the decoder starts from. */
  prompt: number[];
  /** Bytes of model.safetensors. */
  weightBytes: number;
  /** True when every hub file came from Cache Storage (no network). */
  fromCache: boolean;
  loadMs: number;
}

export interface Transcript {
  /** New token ids after the prompt, without the final <|endoftext|>. */
  tokens: number[];
  /** Decoded text, when the model has a tokenizer. */
  text: string | null;
  prompt: number[];
  /** Seconds of audio the model heard (after trimming). */
  seconds: number;
  /** True when the clip was longer than the model's window and only its start was used. */
  trimmed: boolean;
  timing: { melMs: number; decodeMs: number; totalMs: number };
  backend: BackendName;
  /** ModelInfo.label of the model that produced it. */
  model: string;
}

export interface ResultPayloads {
  init: BackendReport;
  'load-model': ModelInfo;
  transcribe: Transcript;
  cancel: { cancelled: boolean };
}

// ---------------------------------------------------------------------------------------------
// Responses

export interface ErrorPayload {
  /** One line a person can act on; never a stack trace. */
  message: string;
  /** Stable tag: an EarshotError code, 'cancelled', 'network', 'http-404', 'internal', … */
  code: string;
}

export interface ProgressPayload {
  /** Units done and expected (bytes for downloads); total 0 when unknown. */
  done: number;
  total: number;
  /** What is happening, in words: "Downloading model.safetensors", "Uploading weights". */
  stage: string;
}

export type EngineResponse =
  | { kind: 'result'; id: number; payload: ResultPayloads[RequestKind] }
  | { kind: 'error'; id: number; payload: ErrorPayload }
  | { kind: 'progress'; id: number; payload: ProgressPayload };
