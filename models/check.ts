/**
 * "Check this model": runs the official ONNX export of the loaded checkpoint (the
 * onnx-community layout, `onnx/encoder_model.onnx` and `onnx/decoder_model.onnx`, as
 * optimum writes them) in onnxruntime-web on the user's own device, on the user's clip, and
 * reports the largest difference from our hooked model's encoder output and logits. It is
 * an independent implementation of the same weights: agreement to float32 rounding means the
 * hooks sit on a faithful Whisper on this machine, whatever backend and kernels run here.
 *
 * Inputs and outputs by the export's names: encoder `input_features` [1, n_mels, frames] →
 * `last_hidden_state` [1, pos, d]; decoder `input_ids` [1, T] (int64) and
 * `encoder_hidden_states` → `logits` [1, T, vocab]. The decoder runs on onnxruntime's own
 * encoder output, so the logits compare the two pipelines end to end.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EarshotError } from './errors.ts';
import type { Whisper } from './whisper.ts';

export interface OnnxExport {
  /** Bytes of encoder_model.onnx and decoder_model.onnx (or their quantized siblings). */
  encoder: Uint8Array;
  decoder: Uint8Array;
}

export interface CheckOptions {
  /** onnxruntime-web's execution provider: 'wasm' (default) or 'webgpu'. */
  executionProvider?: 'wasm' | 'webgpu';
  /** Where onnxruntime-web finds its .wasm files (a URL prefix ending in '/'), if not beside its module. */
  wasmPaths?: string;
  /**
   * The onnxruntime-web module to run (`await import('onnxruntime-web')`, or a smaller build
   * such as 'onnxruntime-web/wasm'). The caller picks it, so that a bundle holds only the
   * build it uses (the default one brings 28 MB of WebGPU-enabled .wasm).
   */
  ort: unknown;
  onProgress?: (stage: string) => void;
  /** Checked between stages (onnxruntime cannot stop a session mid-run): aborting throws 'cancelled'. */
  signal?: AbortSignal;
}

export interface Difference {
  /** Largest |ours − onnxruntime| over every element. */
  maxAbs: number;
  /** Largest |onnxruntime| (to read maxAbs against). */
  scale: number;
  /** maxAbs / max(1, scale). */
  relative: number;
}

export interface CheckReport {
  encoder: Difference;
  logits: Difference;
  /** Argmax tokens at each prefix position: ours and onnxruntime's (equal on a faithful model). */
  topTokens: { ours: number[]; onnx: number[] };
  /** The float32 tolerance this report is judged against (relative to max(1, scale)). */
  tolerance: number;
  ok: boolean;
  /** One sentence for the user. */
  summary: string;
  backend: string;
  executionProvider: string;
  ms: number;
}

interface OrtTensor {
  data: unknown;
  dims: readonly number[];
}
interface OrtModule {
  Tensor: new (type: string, data: Float32Array | BigInt64Array, dims: number[]) => OrtTensor;
  InferenceSession: {
    create(model: Uint8Array, opts: Record<string, unknown>): Promise<{
      run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
      inputNames: readonly string[];
      outputNames: readonly string[];
      release(): Promise<void>;
    }>;
  };
  env: { wasm: { wasmPaths?: unknown; numThreads?: number } };
}

/** Float32 models agree to this (relative to max(1, |value|)); f16-stored checkpoints to ~1e-2. */
export const CHECK_TOLERANCE = 1e-3;

type OrtSession = Awaited<ReturnType<OrtModule['InferenceSession']['create']>>;

/** onnxruntime's own messages can run to several lines; the first one, shortened, is enough. */
function ortMessage(e: unknown): string {
  const line = (e instanceof Error ? e.message : String(e)).split('\n')[0].trim();
  return line.length > 160 ? `${line.slice(0, 159)}…` : line || 'no details';
}

function need(names: readonly string[], want: string, file: string): void {
  if (!names.includes(want)) throw new EarshotError(`${file} has no input "${want}" (it has ${names.join(', ')}): expected the onnx-community layout of this checkpoint's export.`, 'onnx-layout');
}

/** Loads one ONNX file, runs `use` on it and always releases the session. */
async function withSession<T>(ort: OrtModule, bytes: Uint8Array, sessionOpts: Record<string, unknown>, file: string, advice: string, use: (s: OrtSession) => Promise<T>): Promise<T> {
  const session = await ort.InferenceSession.create(bytes, sessionOpts).catch((e: unknown) => {
    // onnxruntime's runtime itself did not start (its .wasm unreachable or refused): not the file's fault.
    if (/no available backend/i.test(ortMessage(e))) throw new EarshotError(`onnxruntime-web could not start in this browser (${ortMessage(e)}); reload the page and try again.`, 'onnx-runtime');
    throw new EarshotError(`onnxruntime-web could not load ${file} (${ortMessage(e)}); ${advice}.`, 'onnx-load');
  });
  try {
    return await use(session);
  } finally {
    await session.release().catch(() => undefined);
  }
}

/** A session that loads but fails on this model's inputs was made for other shapes: say so. */
async function runOrExplain<T>(run: () => Promise<T>, file: string, what: string): Promise<T> {
  try {
    return await run();
  } catch (e) {
    throw new EarshotError(`${file} fails on ${what} (${ortMessage(e)}): the export belongs to another model.`, 'onnx-mismatch');
  }
}

function difference(ours: ArrayLike<number>, theirs: ArrayLike<number>): Difference {
  let maxAbs = 0;
  let scale = 0;
  for (let i = 0; i < theirs.length; i++) {
    const e = Math.abs(ours[i] - theirs[i]);
    if (!(e <= maxAbs)) maxAbs = Number.isNaN(e) ? Infinity : e;
    scale = Math.max(scale, Math.abs(theirs[i]));
  }
  return { maxAbs, scale, relative: maxAbs / Math.max(1, scale) };
}

function argmaxRows(x: ArrayLike<number>, rows: number, cols: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (x[r * cols + c] > x[r * cols + best]) best = c;
    out.push(best);
  }
  return out;
}

/**
 * Compares our model with the ONNX export on one clip's log-mel [n_mels × frames] and a
 * decoder prefix (e.g. the transcription prompt plus the transcript so far).
 */
export async function checkModel(model: Whisper, onnx: OnnxExport, mel: Float32Array, prefix: readonly number[], opts: CheckOptions): Promise<CheckReport> {
  const t0 = performance.now();
  const c = model.config;
  const frames = 2 * c.maxSourcePositions;
  if (mel.length !== c.numMelBins * frames) throw new EarshotError(`The clip's log-mel has ${mel.length} values; this model expects ${c.numMelBins} × ${frames}.`, 'bad-input');
  if (prefix.length === 0) throw new EarshotError('The decoder prefix is empty; it needs at least <|startoftranscript|>.', 'bad-prefix');
  const ort = opts.ort as OrtModule;
  if (opts.wasmPaths) ort.env.wasm.wasmPaths = opts.wasmPaths;
  const ep = opts.executionProvider ?? 'wasm';
  const sessionOpts = { executionProviders: [ep], graphOptimizationLevel: 'all' };
  const stage = (what: string) => {
    if (opts.signal?.aborted) throw new EarshotError('Cancelled.', 'cancelled');
    opts.onProgress?.(what);
  };

  // Ours first (the model's current backend and kernels).
  stage('Running the hooked model');
  const melT = tf.tensor3d(mel, [1, c.numMelBins, frames]);
  const tokens = tf.tensor2d([Array.from(prefix)], [1, prefix.length], 'int32');
  const encoderOut = model.encode(melT);
  const cross = model.crossKV(encoderOut);
  const { logits, present } = model.decode(tokens, cross);
  let ourEncoder: Float32Array;
  let ourLogits: Float32Array;
  try {
    ourEncoder = (await encoderOut.data()) as Float32Array;
    ourLogits = (await logits.data()) as Float32Array;
  } finally {
    tf.dispose([melT, tokens, encoderOut, logits, ...cross.flatMap((kv) => [kv.k, kv.v]), ...present.flatMap((kv) => [kv.k, kv.v])]);
  }

  stage('Running the ONNX export (encoder)');
  const hidden = await withSession(ort, onnx.encoder, sessionOpts, 'encoder_model.onnx', 'use the encoder of the same checkpoint\'s ONNX export', async (encoder) => {
    need(encoder.inputNames, 'input_features', 'encoder_model.onnx');
    const out = await runOrExplain(() => encoder.run({ input_features: new ort.Tensor('float32', mel, [1, c.numMelBins, frames]) }), 'encoder_model.onnx', `a log-mel of ${c.numMelBins} × ${frames}`);
    return out[encoder.outputNames.includes('last_hidden_state') ? 'last_hidden_state' : encoder.outputNames[0]];
  });
  if (hidden.dims.length !== 3 || hidden.dims[1] !== c.maxSourcePositions || hidden.dims[2] !== c.dModel) {
    throw new EarshotError(`encoder_model.onnx returns [${hidden.dims.join(', ')}] but this checkpoint's encoder gives [1, ${c.maxSourcePositions}, ${c.dModel}]: the export belongs to another model.`, 'onnx-mismatch');
  }

  stage('Running the ONNX export (decoder)');
  const onnxLogits = await withSession(ort, onnx.decoder, sessionOpts, 'decoder_model.onnx', 'use decoder_model.onnx (not the merged KV-cache one) of the same export', async (decoder) => {
    need(decoder.inputNames, 'input_ids', 'decoder_model.onnx');
    need(decoder.inputNames, 'encoder_hidden_states', 'decoder_model.onnx');
    const ids = new ort.Tensor('int64', BigInt64Array.from(prefix.map((t) => BigInt(t))), [1, prefix.length]);
    const out = await runOrExplain(() => decoder.run({ input_ids: ids, encoder_hidden_states: hidden }), 'decoder_model.onnx', `${prefix.length} tokens and this encoder's output`);
    return out[decoder.outputNames.includes('logits') ? 'logits' : decoder.outputNames[0]];
  });
  if (onnxLogits.dims.length !== 3 || onnxLogits.dims[1] !== prefix.length || onnxLogits.dims[2] !== c.vocabSize) {
    throw new EarshotError(`decoder_model.onnx returns logits [${onnxLogits.dims.join(', ')}] but this checkpoint gives [1, ${prefix.length}, ${c.vocabSize}]: the export belongs to another model.`, 'onnx-mismatch');
  }
  stage('Comparing');

  const encoderDiff = difference(ourEncoder, hidden.data as Float32Array);
  const logitsDiff = difference(ourLogits, onnxLogits.data as Float32Array);
  const topTokens = { ours: argmaxRows(ourLogits, prefix.length, c.vocabSize), onnx: argmaxRows(onnxLogits.data as Float32Array, prefix.length, c.vocabSize) };
  const ok = encoderDiff.relative <= CHECK_TOLERANCE && logitsDiff.relative <= CHECK_TOLERANCE && topTokens.ours.every((t, i) => t === topTokens.onnx[i]);
  const summary = ok
    ? `The hooked model matches the ONNX export on this clip: largest difference ${encoderDiff.maxAbs.toExponential(1)} in the encoder output and ${logitsDiff.maxAbs.toExponential(1)} in the logits (float32 rounding).`
    : `The hooked model differs from the ONNX export on this clip: ${encoderDiff.maxAbs.toExponential(1)} in the encoder output and ${logitsDiff.maxAbs.toExponential(1)} in the logits${topTokens.ours.some((t, i) => t !== topTokens.onnx[i]) ? ', and the top tokens differ' : ''}. Check that the ONNX files belong to this checkpoint; if they do, try another backend (?backend=wasm) or ?kernels=tfjs and report it.`;
  return { encoder: encoderDiff, logits: logitsDiff, topTokens, tolerance: CHECK_TOLERANCE, ok, summary, backend: tf.getBackend(), executionProvider: ep, ms: performance.now() - t0 };
}
