/**
 * "Check this model": where the loaded checkpoint's official ONNX export lives, and the two
 * .onnx files a person picks. The check itself runs in the engine worker
 * (workers/check-request.ts → models/check.ts).
 */
import { EarshotError } from '../models/errors.ts';
import type { OnnxSource } from '../workers/protocol.ts';

/** Checkpoint families whose ONNX export onnx-community publishes under the same name. */
const EXPORTS: readonly { from: RegExp; to: (name: string) => string }[] = [
  // openai/whisper-tiny → onnx-community/whisper-tiny (tiny, base, small, medium, large-v3, *.en, turbo).
  { from: /^openai\/(whisper-[\w.-]+)$/i, to: (name) => `onnx-community/${name}` },
  // Repos that are themselves exports (they hold onnx/encoder_model.onnx): check against them.
  { from: /^((?:onnx-community|Xenova)\/[\w.-]+)$/, to: (name) => name },
];

/** The hub repo with `repo`'s ONNX export, or null when there is no known one (the person types it). */
export function onnxExportRepo(repo: string): string | null {
  const id = repo.trim();
  for (const e of EXPORTS) {
    const m = e.from.exec(id);
    if (m) return e.to(m[1]);
  }
  return null;
}

/**
 * The picked files → encoder and decoder, by name as optimum writes them (encoder_model.onnx,
 * decoder_model.onnx, or their _fp16/_quantized siblings). One sentence when they do not fit.
 */
export function pickOnnxFiles<F extends { name: string }>(files: readonly F[]): { encoder: F; decoder: F } {
  const onnx = files.filter((f) => f.name.toLowerCase().endsWith('.onnx'));
  const other = files.filter((f) => !f.name.toLowerCase().endsWith('.onnx'));
  if (other.length > 0) throw new EarshotError(`${other[0].name} is not an .onnx file; pick encoder_model.onnx and decoder_model.onnx from the export's onnx/ folder.`, 'bad-onnx-files');
  const merged = onnx.find((f) => /merged|with_past/i.test(f.name));
  if (merged) throw new EarshotError(`${merged.name} is the KV-cache decoder; pick decoder_model.onnx (without past) instead.`, 'bad-onnx-files');
  const encoders = onnx.filter((f) => /encoder/i.test(f.name));
  const decoders = onnx.filter((f) => /decoder/i.test(f.name) && !/encoder/i.test(f.name));
  if (encoders.length !== 1 || decoders.length !== 1 || onnx.length !== 2) {
    throw new EarshotError('Pick exactly two files: encoder_model.onnx and decoder_model.onnx from the export\'s onnx/ folder.', 'bad-onnx-files');
  }
  return { encoder: encoders[0], decoder: decoders[0] };
}

export async function onnxSourceFromFiles(files: readonly File[]): Promise<OnnxSource> {
  const { encoder, decoder } = pickOnnxFiles(files);
  return { type: 'files', encoder: await encoder.arrayBuffer(), decoder: await decoder.arrayBuffer(), label: `${encoder.name} + ${decoder.name}` };
}

/** "3.1e-6" for the report's numbers (0 stays "0"). */
export function formatDiff(x: number): string {
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return String(x);
  return x.toExponential(1);
}
