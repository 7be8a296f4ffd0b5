/**
 * Whisper weights under their Hugging Face names, checked against the config
 * before a single tensor reaches the device. Names are never renamed: the model
 * looks parameters up with `get('model.encoder.layers.0.fc1.weight')`.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { WhisperConfig } from './config.ts';
import { EarshotError } from './errors.ts';
import type { SafeTensors } from './safetensors.ts';

type Shape = readonly number[];

/** Every tensor a WhisperForConditionalGeneration checkpoint holds, with its shape. */
export function expectedTensors(c: WhisperConfig): Map<string, Shape> {
  const d = c.dModel;
  const m = new Map<string, Shape>();
  const linear = (prefix: string, out: number, inp: number, bias = true) => {
    m.set(`${prefix}.weight`, [out, inp]);
    if (bias) m.set(`${prefix}.bias`, [out]);
  };
  const norm = (prefix: string) => {
    m.set(`${prefix}.weight`, [d]);
    m.set(`${prefix}.bias`, [d]);
  };
  const attention = (prefix: string) => {
    linear(`${prefix}.q_proj`, d, d);
    linear(`${prefix}.k_proj`, d, d, false); // Whisper's key projection has no bias
    linear(`${prefix}.v_proj`, d, d);
    linear(`${prefix}.out_proj`, d, d);
  };
  m.set('model.encoder.conv1.weight', [d, c.numMelBins, 3]);
  m.set('model.encoder.conv1.bias', [d]);
  m.set('model.encoder.conv2.weight', [d, d, 3]);
  m.set('model.encoder.conv2.bias', [d]);
  m.set('model.encoder.embed_positions.weight', [c.maxSourcePositions, d]);
  for (let i = 0; i < c.encoderLayers; i++) {
    const p = `model.encoder.layers.${i}`;
    attention(`${p}.self_attn`);
    norm(`${p}.self_attn_layer_norm`);
    linear(`${p}.fc1`, c.encoderFfnDim, d);
    linear(`${p}.fc2`, d, c.encoderFfnDim);
    norm(`${p}.final_layer_norm`);
  }
  norm('model.encoder.layer_norm');
  m.set('model.decoder.embed_tokens.weight', [c.vocabSize, d]);
  m.set('model.decoder.embed_positions.weight', [c.maxTargetPositions, d]);
  for (let i = 0; i < c.decoderLayers; i++) {
    const p = `model.decoder.layers.${i}`;
    attention(`${p}.self_attn`);
    norm(`${p}.self_attn_layer_norm`);
    attention(`${p}.encoder_attn`);
    norm(`${p}.encoder_attn_layer_norm`);
    linear(`${p}.fc1`, c.decoderFfnDim, d);
    linear(`${p}.fc2`, d, c.decoderFfnDim);
    norm(`${p}.final_layer_norm`);
  }
  norm('model.decoder.layer_norm');
  return m;
}

/** The output projection is tied to the token embedding; checkpoints may or may not store it. */
const OPTIONAL = new Map<string, (c: WhisperConfig) => Shape>([
  ['proj_out.weight', (c) => [c.vocabSize, c.dModel]],
]);

/**
 * The config.json keys a checkpoint's tensors pin down, read back from the tensors themselves
 * (only those whose tensors are present). Lets a mismatch be named by its cause
 * ("config.json says d_model 64, the weights are 32") rather than by its hundred symptoms.
 */
function hyperparametersOf(st: SafeTensors): Partial<Record<string, number>> {
  const shape = (name: string) => (st.has(name) ? st.info(name).shape : null);
  const out: Partial<Record<string, number>> = {};
  const conv1 = shape('model.encoder.conv1.weight'); // [d_model, n_mels, 3]
  if (conv1?.length === 3) [out.d_model, out.num_mel_bins] = conv1;
  const embed = shape('model.decoder.embed_tokens.weight'); // [vocab, d_model]
  if (embed?.length === 2) out.vocab_size = embed[0];
  const source = shape('model.encoder.embed_positions.weight');
  if (source?.length === 2) out.max_source_positions = source[0];
  const target = shape('model.decoder.embed_positions.weight');
  if (target?.length === 2) out.max_target_positions = target[0];
  for (const stack of ['encoder', 'decoder'] as const) {
    const blocks = new Set(st.names().map((n) => new RegExp(`^model\\.${stack}\\.layers\\.(\\d+)\\.`).exec(n)?.[1]).filter((b) => b !== undefined));
    if (blocks.size > 0) out[`${stack}_layers`] = blocks.size;
    const fc1 = shape(`model.${stack}.layers.0.fc1.weight`); // [ffn, d_model]
    if (fc1?.length === 2) out[`${stack}_ffn_dim`] = fc1[0];
  }
  return out;
}

const CONFIG_KEYS: Record<string, (c: WhisperConfig) => number> = {
  d_model: (c) => c.dModel,
  encoder_layers: (c) => c.encoderLayers,
  decoder_layers: (c) => c.decoderLayers,
  vocab_size: (c) => c.vocabSize,
  num_mel_bins: (c) => c.numMelBins,
  encoder_ffn_dim: (c) => c.encoderFfnDim,
  decoder_ffn_dim: (c) => c.decoderFfnDim,
  max_source_positions: (c) => c.maxSourcePositions,
  max_target_positions: (c) => c.maxTargetPositions,
};

const SAME_CHECKPOINT = 'Check that config.json and model.safetensors come from the same Whisper checkpoint.';

/**
 * Checks names and shapes against the config and returns the problems as one
 * readable message (or null). Done before reading any tensor data. When config.json and the
 * tensors disagree on a hyperparameter, that is what the message says.
 */
export function checkCheckpoint(st: SafeTensors, c: WhisperConfig): string | null {
  const expected = expectedTensors(c);
  const problems: string[] = [];
  const missing = [...expected.keys()].filter((n) => !st.has(n));
  if (missing.length) problems.push(`missing ${missing.length} tensor(s), e.g. ${missing.slice(0, 3).join(', ')}`);
  for (const name of st.names()) {
    const want = expected.get(name) ?? OPTIONAL.get(name)?.(c);
    if (!want) {
      problems.push(`unexpected tensor ${name}`);
      continue;
    }
    const got = st.info(name).shape;
    if (got.length !== want.length || got.some((v, i) => v !== want[i])) {
      problems.push(`${name} has shape [${got}] but config.json implies [${want}]`);
    }
  }
  if (problems.length === 0) return null;
  const found = hyperparametersOf(st);
  const causes = Object.entries(CONFIG_KEYS)
    .filter(([key, of]) => found[key] !== undefined && found[key] !== of(c))
    .map(([key, of]) => `${key} ${of(c)} where the weights have ${found[key]}`);
  if (causes.length > 0) {
    return `config.json does not describe these weights: it says ${causes.slice(0, 3).join(', ')}${causes.length > 3 ? `, and ${causes.length - 3} more` : ''}. ${SAME_CHECKPOINT}`;
  }
  const shown = problems.slice(0, 4).join('; ') + (problems.length > 4 ? `; and ${problems.length - 4} more` : '');
  return `The weights do not match config.json (${shown}). ${SAME_CHECKPOINT}`;
}

export interface Weights {
  /** True when every tensor of the checkpoint is stored as F16 (so f16 storage on the device loses nothing). */
  readonly storedAsF16: boolean;
  /** Looks a parameter up by its Hugging Face name. */
  get(name: string): tf.Tensor;
  /** Hands a parameter over to the caller (who then owns and disposes it) and forgets it. */
  take(name: string): tf.Tensor;
  dispose(): void;
}

/** Uploads every expected tensor to the current tfjs backend as float32. */
export function loadWeights(st: SafeTensors, c: WhisperConfig): Weights {
  const problem = checkCheckpoint(st, c);
  if (problem) throw new EarshotError(problem, 'weights-mismatch');
  const tensors = new Map<string, tf.Tensor>();
  for (const [name, shape] of expectedTensors(c)) {
    tensors.set(name, tf.tensor(st.getF32(name), shape as number[], 'float32'));
  }
  // Tied output projection: use the stored copy only if the checkpoint has one.
  tensors.set(
    'proj_out.weight',
    st.has('proj_out.weight')
      ? tf.tensor(st.getF32('proj_out.weight'), [c.vocabSize, c.dModel], 'float32')
      : tensors.get('model.decoder.embed_tokens.weight')!,
  );
  const storedAsF16 = st.names().every((n) => st.info(n).dtype === 'F16');
  return {
    storedAsF16,
    get(name) {
      const t = tensors.get(name);
      if (!t) throw new Error(`No weight named ${name}`);
      return t;
    },
    take(name) {
      const t = this.get(name);
      tensors.delete(name);
      return t;
    },
    dispose() {
      for (const t of new Set(tensors.values())) t.dispose();
      tensors.clear();
    },
  };
}
