/**
 * Hostile and mismatched checkpoints, one per kind of bad model file a person can hand
 * Earshot, each made from the micro fixture (a valid whisper-shaped model) by one change.
 * The same table drives the loader test (tests/hostile-checkpoints.test.ts), the CLI
 * process test (tools/cli/earshot.test.ts) and the page (tests/e2e/bad-input.spec.ts), and
 * pins the exact sentence the person reads: what is wrong and what to do.
 * Node only (reads the fixture from disk); no DOM.
 */
import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafeTensors, writeSafetensors, type TensorToWrite } from '../../models/safetensors.ts';
import { tinyTokenizerJson } from './tiny-tokenizer.ts';

export const MICRO_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'micro');

export interface HostileCheckpoint {
  name: string;
  /** config.json as it would be on disk. */
  config: string;
  /** model.safetensors bytes. */
  safetensors: Uint8Array;
  /** tokenizer.json as it would be on disk, when the case has one. */
  tokenizer?: string;
  /** EarshotError code. */
  code: string;
  /** The whole sentence the person reads. */
  message: string;
}

const RETRY = 're-download the file or re-export it with safetensors';

/** The micro fixture's files, as on disk. */
export function microFiles(): { config: string; safetensors: Uint8Array } {
  return {
    config: readFileSync(resolve(MICRO_DIR, 'config.json'), 'utf8'),
    safetensors: new Uint8Array(readFileSync(resolve(MICRO_DIR, 'model.safetensors'))),
  };
}

/** The header of a safetensors file, and where its data section starts. */
function splitFile(bytes: Uint8Array): { header: Record<string, { dtype: string; shape: number[]; data_offsets: number[] }>; blob: Uint8Array } {
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { header: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))), blob: bytes.subarray(8 + n) };
}

/** A file with the header text and length field given, over the data blob. */
function joinFile(headerText: string, blob: Uint8Array, lengthField?: bigint): Uint8Array {
  const headerBytes = new TextEncoder().encode(headerText);
  const out = new Uint8Array(8 + headerBytes.length + blob.length);
  new DataView(out.buffer).setBigUint64(0, lengthField ?? BigInt(headerBytes.length), true);
  out.set(headerBytes, 8);
  out.set(blob, 8 + headerBytes.length);
  return out;
}

/** The micro weights with one header entry changed (data untouched). */
function editEntry(bytes: Uint8Array, name: string, change: (entry: { dtype: string; shape: number[]; data_offsets: number[] }) => void): Uint8Array {
  const { header, blob } = splitFile(bytes);
  change(header[name]);
  return joinFile(JSON.stringify(header), blob);
}

/** The micro weights rewritten with a tensor dropped or added (a consistent file: only the names differ). */
function rewrite(bytes: Uint8Array, drop: string[], add: Record<string, TensorToWrite> = {}): Uint8Array {
  const st = SafeTensors.parse(bytes);
  const tensors: Record<string, TensorToWrite> = {};
  for (const name of st.names()) {
    if (!drop.includes(name)) tensors[name] = { shape: st.info(name).shape, data: st.getF32(name), dtype: 'F16' };
  }
  return writeSafetensors({ ...tensors, ...add }, st.metadata);
}

function withConfig(config: string, change: Record<string, unknown>): string {
  return JSON.stringify({ ...JSON.parse(config), ...change }, null, 2);
}

const WHISPER_SPECIALS = ['<|endoftext|>', '<|startoftranscript|>', '<|en|>', '<|de|>', '<|translate|>', '<|transcribe|>',
  '<|startoflm|>', '<|startofprev|>', '<|nospeech|>', '<|notimestamps|>', '<|0.00|>'];
const tokenizerWithout = (special: string) => JSON.stringify(tinyTokenizerJson(WHISPER_SPECIALS.filter((s) => s !== special)));

/** One hostile checkpoint per kind, built from the micro fixture's files. */
export function hostileCheckpoints(micro = microFiles()): HostileCheckpoint[] {
  const { config, safetensors: st } = micro;
  const { blob } = splitFile(st);
  const headerLength = st.length - blob.length - 8;
  const dataBytes = blob.length;
  const weightsMismatch = (shown: string) =>
    `The weights do not match config.json (${shown}). Check that config.json and model.safetensors come from the same Whisper checkpoint.`;
  const configMismatch = (says: string) =>
    `config.json does not describe these weights: it says ${says}. Check that config.json and model.safetensors come from the same Whisper checkpoint.`;
  const cases: HostileCheckpoint[] = [
    {
      name: 'not a safetensors file at all',
      config,
      safetensors: new TextEncoder().encode('these bytes are not a safetensors file'),
      code: 'safetensors/header-too-large',
      message: `safetensors header claims 8.75e+18 bytes (limit 100000000); the file is corrupt or not safetensors — ${RETRY}.`,
    },
    {
      name: 'a PyTorch .bin (zip) renamed model.safetensors',
      config,
      safetensors: new Uint8Array([0x50, 0x4b, 0x03, 0x04, 0x14, 0x00, 0x00, 0x00, 0x08, 0x00, ...new TextEncoder().encode('archive/data.pkl')]),
      code: 'safetensors/header-too-large',
      message: "this file is a zip archive (a PyTorch .bin checkpoint?), not safetensors; use the checkpoint's model.safetensors, or convert it with the safetensors library.",
    },
    {
      name: 'truncated inside the header',
      config,
      safetensors: st.slice(0, 5000),
      code: 'safetensors/truncated',
      message: `safetensors header claims ${headerLength} bytes but the file has only 4992 after the length field; the file is truncated — ${RETRY}.`,
    },
    {
      name: 'truncated inside the data (an interrupted download)',
      config,
      safetensors: st.slice(0, st.length - 1000),
      code: 'safetensors/bad-offsets',
      message: `safetensors tensor "model.encoder.layers.1.self_attn.v_proj.weight" has data_offsets [3432640, 3434688] outside the ${dataBytes - 1000}-byte data section; the file is truncated or corrupt — ${RETRY}.`,
    },
    {
      name: 'header length beyond the end of the file',
      config,
      safetensors: (() => {
        const bytes = st.slice();
        new DataView(bytes.buffer).setBigUint64(0, BigInt(st.length), true);
        return bytes;
      })(),
      code: 'safetensors/truncated',
      message: `safetensors header claims ${st.length} bytes but the file has only ${st.length - 8} after the length field; the file is truncated — ${RETRY}.`,
    },
    {
      name: 'header that is not JSON',
      config,
      safetensors: joinFile('{"model.encoder.conv1.weight": [oops'.padEnd(headerLength, ' '), blob),
      code: 'safetensors/bad-header',
      message: `safetensors header is not valid UTF-8 JSON; the file is corrupt or not safetensors — ${RETRY}.`,
    },
    {
      name: 'overlapping tensors',
      config,
      safetensors: editEntry(st, 'model.decoder.layer_norm.weight', (e) => (e.data_offsets = [3321408, 3321472])),
      code: 'safetensors/overlap',
      message: `safetensors tensors "model.decoder.layer_norm.bias" and "model.decoder.layer_norm.weight" overlap in the data section; the file is corrupt — ${RETRY}.`,
    },
    {
      name: 'offsets beyond the data section',
      config,
      safetensors: editEntry(st, 'model.encoder.layers.1.self_attn_layer_norm.weight', (e) => (e.data_offsets = [e.data_offsets[0], e.data_offsets[1] + 4096])),
      code: 'safetensors/bad-offsets',
      message: `safetensors tensor "model.encoder.layers.1.self_attn_layer_norm.weight" has data_offsets [3434752, 3438912] outside the ${dataBytes}-byte data section; the file is truncated or corrupt — ${RETRY}.`,
    },
    {
      name: 'unknown dtype',
      config,
      safetensors: editEntry(st, 'model.encoder.conv1.bias', (e) => (e.dtype = 'F12')),
      code: 'safetensors/bad-dtype',
      message: `safetensors tensor "model.encoder.conv1.bias" has unknown dtype "F12" (expected one of F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2); ${RETRY}.`,
    },
    {
      name: 'shape that does not match the byte span',
      config,
      safetensors: editEntry(st, 'model.encoder.conv1.bias', (e) => (e.shape = [33])),
      code: 'safetensors/size-mismatch',
      message: `safetensors tensor "model.encoder.conv1.bias": shape [33] × F16 needs 66 bytes but data_offsets span 64; ${RETRY}.`,
    },
    {
      name: 'a missing tensor',
      config,
      safetensors: rewrite(st, ['model.encoder.layers.0.fc1.bias']),
      code: 'weights-mismatch',
      message: weightsMismatch('missing 1 tensor(s), e.g. model.encoder.layers.0.fc1.bias'),
    },
    {
      name: 'an extra tensor',
      config,
      safetensors: rewrite(st, [], { 'model.encoder.layers.0.adapter.weight': { shape: [4], data: new Float32Array(4), dtype: 'F16' } }),
      code: 'weights-mismatch',
      message: weightsMismatch('unexpected tensor model.encoder.layers.0.adapter.weight'),
    },
    {
      name: 'config.json with another d_model',
      config: withConfig(config, { d_model: 64 }),
      safetensors: st,
      code: 'weights-mismatch',
      message: configMismatch('d_model 64 where the weights have 32'),
    },
    {
      name: 'config.json with more encoder layers',
      config: withConfig(config, { encoder_layers: 3 }),
      safetensors: st,
      code: 'weights-mismatch',
      message: configMismatch('encoder_layers 3 where the weights have 2'),
    },
    {
      name: 'config.json with fewer decoder layers',
      config: withConfig(config, { decoder_layers: 1 }),
      safetensors: st,
      code: 'weights-mismatch',
      message: configMismatch('decoder_layers 1 where the weights have 2'),
    },
    {
      name: 'config.json of another model size (tiny against micro weights)',
      config: withConfig(config, { d_model: 384, encoder_layers: 4, decoder_layers: 4, encoder_attention_heads: 6, decoder_attention_heads: 6, encoder_ffn_dim: 1536, decoder_ffn_dim: 1536, max_source_positions: 1500, max_target_positions: 448 }),
      safetensors: st,
      code: 'weights-mismatch',
      message: configMismatch('d_model 384 where the weights have 32, encoder_layers 4 where the weights have 2, decoder_layers 4 where the weights have 2, and 4 more'),
    },
    {
      name: 'config.json of another kind of model',
      config: withConfig(config, { model_type: 'bert' }),
      safetensors: st,
      code: 'config/invalid-field',
      message: 'Whisper config.json field "model_type" must be the string "whisper", got "bert"; check that this is the config.json of a Hugging Face Whisper checkpoint.',
    },
    {
      name: 'tokenizer.json without <|endoftext|>',
      config,
      safetensors: st,
      tokenizer: tokenizerWithout('<|endoftext|>'),
      code: 'tokenizer/missing-special',
      message: 'tokenizer.json has no <|endoftext|> token, so it is not a Whisper tokenizer; use the tokenizer.json that belongs to the Whisper checkpoint.',
    },
    {
      name: 'tokenizer.json without <|startoftranscript|>',
      config,
      safetensors: st,
      tokenizer: tokenizerWithout('<|startoftranscript|>'),
      code: 'tokenizer/missing-special',
      message: 'tokenizer.json has no <|startoftranscript|> token, so it is not a Whisper tokenizer; use the tokenizer.json that belongs to the Whisper checkpoint.',
    },
    {
      name: 'tokenizer.json of another checkpoint',
      config,
      safetensors: st,
      tokenizer: JSON.stringify(tinyTokenizerJson(WHISPER_SPECIALS)),
      code: 'tokenizer-mismatch',
      message: 'tokenizer.json puts <|startoftranscript|> at 4 but config.json says 50258; use the tokenizer of the same checkpoint.',
    },
  ];
  return cases;
}
