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
import type { CheckReport } from '../models/check.ts';
import type { AttributionResult } from '../lab/attribution.ts';
import type { PathwayGrounding, TokenGrounding } from '../lab/grounding.ts';
import type { LensResult } from '../lab/lens.ts';
import type { Metric, SweepSpec } from '../lab/spec.ts';
import type { PatchResult, SweepResult } from '../lab/sweep.ts';

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

/**
 * Where the ONNX export of the loaded checkpoint comes from ("Check this model"): the two
 * files of the onnx-community layout, `onnx/encoder_model.onnx` and `onnx/decoder_model.onnx`.
 */
export type OnnxSource =
  /** The demo model's export, which this site serves at `models/demo/onnx/` (`baseUrl`: models/demo/). */
  | { type: 'demo'; baseUrl: string }
  /** A Hugging Face repo with the export (e.g. onnx-community/whisper-tiny), through Cache Storage. */
  | { type: 'hub'; repo: string; revision: string }
  /** The two files the person picked (transferred). */
  | { type: 'files'; encoder: ArrayBuffer; decoder: ArrayBuffer; label: string };

export interface RequestPayloads {
  /** Choose and start the tensor backend. `backend` overrides the choice (`?backend=` in the page URL). */
  init: { backend?: BackendName };
  /** Load a checkpoint; on success it replaces the current model, on failure the old one stays. */
  'load-model': { source: ModelSource };
  /** Greedy transcription of mono 16 kHz float32 samples (a transferred Float32Array buffer). */
  transcribe: { samples: ArrayBuffer; label: string };
  /** Cancel the request with id `target` (queued or running); a no-op once it has answered. */
  cancel: { target: number };

  // ── the lab (lab/ experiments on the loaded model) ──
  /** Log-mel of a clip for display: only the clip's own frames, not the window's padding. */
  logmel: { samples: ArrayBuffer };
  /** White noise with the clean clip's length and RMS (lab/corruptions.ts), seeded. */
  'white-noise': { samples: ArrayBuffer; seed: number };
  /** A word typed by the user → its token ids (needs a tokenizer). */
  tokenize: { text: string };
  /**
   * Both clips (mono 16 kHz float32, transferred): transcribes them, picks the target/foil
   * (`choice`, or the first differing token) and creates the PatchLab every later lab
   * request uses. Replaces any earlier pair.
   */
  'prepare-pair': { clean: ArrayBuffer; corrupt: ArrayBuffer; choice?: TargetChoiceInput };
  /** New prefix/target/foil for the prepared pair (recreates the PatchLab). */
  'set-target': { choice: TargetChoiceInput };
  /** An activation-patching sweep (validated with lab/spec.ts SweepSpecSchema); progress carries partial results. */
  sweep: { spec: SweepSpec };
  /** Pathway grounding coefficient per decoder layer and overall (lab/grounding.ts). */
  grounding: { metric: Metric };
  /**
   * Listen-vs-guess along the clean transcript (teacher-forced), over its first `maxTokens`
   * tokens: the pass scores every position over the whole vocabulary, 2 variants per token.
   */
  'listen-vs-guess': { maxTokens: number };
  /** Logit lens and encoder lens on the clean run. */
  lens: Record<string, never>;
  /** Attribution patching over hook patterns, top candidates verified with real patches. */
  attribution: { hooks: string[]; topK: number; encoderRange?: [number, number] };
  /** Cross-attention patterns of the clean run at the target position, for the chart. */
  attention: Record<string, never>;
  /**
   * "Check this model": the ONNX export in onnxruntime-web (wasm) against the loaded model,
   * on the clean clip (mono 16 kHz samples, transferred) or the prepared pair's clean run.
   */
  'check-model': { clip: { type: 'samples'; samples: ArrayBuffer } | { type: 'pair' }; onnx: OnnxSource };
}

/** What the user fixes of a prefix/target/foil; the prefix includes the prompt. */
export interface TargetChoiceInput {
  prefix: number[];
  target: number;
  foil: number;
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
  /** Set when a downloaded file could not be stored in Cache Storage (e.g. the quota is full). */
  cacheError?: string;
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

export interface MelImage {
  /** Log-mel values, mel-major [nMels × frames] (a transferred Float32Array buffer). */
  mel: ArrayBuffer;
  nMels: number;
  /** Frames of the clip itself (10 ms each). */
  frames: number;
  seconds: number;
}

/** One transcript of the pair, with each token's text when the model has a tokenizer. */
export interface PairTranscript {
  tokens: number[];
  /** Display text of each token (null without a tokenizer). */
  pieces: (string | null)[];
  text: string | null;
  seconds: number;
  trimmed: boolean;
}

/** The PatchLab the worker holds: what is patched and the unpatched metrics. */
export interface LabReport {
  choice: TargetChoiceInput;
  /** Display text of the prefix, target and foil tokens (null without a tokenizer). */
  pieces: { prefix: (string | null)[]; target: string | null; foil: string | null };
  /** Index of the target in the clean transcript (prefix length − prompt length). */
  index: number;
  /** Unpatched metrics of both runs. */
  base: { clean: Record<Metric, number>; corrupt: Record<Metric, number> };
}

export interface PairReport {
  clean: PairTranscript;
  corrupt: PairTranscript;
  prompt: number[];
  /** Encoder positions (20 ms each) the longer clip covers: the sweep's encoderRange end. */
  encoderPositions: number;
  /** Encoder positions the model has in all (its window). */
  maxSourcePositions: number;
  /** The lab, or null with `choiceError` when no target could be chosen (identical transcripts). */
  lab: LabReport | null;
  choiceError: string | null;
  /** How the default target/foil was chosen, when not from the first differing token. */
  choiceNote: string | null;
}

export interface AttentionReport {
  /** Cross-attention weights at the last prefix position: float32 [layer][head][encoder position] (transferred). */
  weights: ArrayBuffer;
  layers: number;
  heads: number;
  positions: number;
}

/** What "Check this model" found, and on what. */
export interface ModelCheckResult {
  report: CheckReport;
  /** The export's name: "onnx-community/whisper-tiny", "this site's demo export", file names. */
  onnxLabel: string;
  /** Which clip: "the prepared pair's clean clip" or "the clean clip". */
  clip: string;
  /** Decoder positions compared: the prompt plus the clean transcript. */
  positions: number;
  /** True when both hub files came from Cache Storage. */
  fromCache: boolean;
}

export interface ResultPayloads {
  init: BackendReport;
  'load-model': ModelInfo;
  transcribe: Transcript;
  cancel: { cancelled: boolean };
  logmel: MelImage;
  'white-noise': { samples: ArrayBuffer };
  tokenize: { tokens: number[]; pieces: (string | null)[] };
  'prepare-pair': PairReport;
  'set-target': LabReport;
  sweep: SweepResult;
  grounding: PathwayGrounding;
  'listen-vs-guess': TokenGrounding[];
  lens: { logit: LensResult; encoder: LensResult };
  attribution: AttributionResult;
  attention: AttentionReport;
  'check-model': ModelCheckResult;
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
  /** Sweeps: the variants finished since the previous progress message (partial results). */
  results?: PatchResult[];
  /** Set once when the engine changed backend during the request (WebGPU device lost → wasm). */
  backend?: BackendReport;
}

export type EngineResponse =
  | { kind: 'result'; id: number; payload: ResultPayloads[RequestKind] }
  | { kind: 'error'; id: number; payload: ErrorPayload }
  | { kind: 'progress'; id: number; payload: ProgressPayload };
