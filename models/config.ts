/**
 * Whisper hyper-parameters, read from a Hugging Face `config.json`.
 *
 * Only the keys that shape the network are read; generation settings (suppress_tokens,
 * forced_decoder_ids, …) are ignored here. Structural keys are required rather than defaulted:
 * a config missing `d_model` should fail loudly, not silently become whisper-tiny.
 */
import { z } from './zod.ts';
import { EarshotError, describeValue } from './errors.ts';

export interface WhisperConfig {
  vocabSize: number;
  numMelBins: number;
  dModel: number;
  encoderLayers: number;
  decoderLayers: number;
  encoderHeads: number;
  decoderHeads: number;
  encoderFfnDim: number;
  decoderFfnDim: number;
  /** Encoder positions after the stride-2 conv (1500 for every released checkpoint). */
  maxSourcePositions: number;
  /** Decoder context length (448). */
  maxTargetPositions: number;
  decoderStartTokenId: number;
  eosTokenId: number;
  padTokenId: number;
  /** torch nn.LayerNorm default; Whisper configs do not carry it. */
  layerNormEps: number;
  /** Exact erf GELU (NOTES.md §6). */
  activation: 'gelu';
  scaleEmbedding: boolean;
}

/** What each key means, used to tell the user what a valid value looks like. */
const FIELD_HELP = {
  model_type: 'the string "whisper"',
  vocab_size: 'a positive integer (51865 for multilingual, 51864 for English-only)',
  num_mel_bins: 'a positive integer (80, or 128 for large-v3)',
  d_model: 'a positive integer (hidden size, e.g. 384 for tiny)',
  encoder_layers: 'a positive integer',
  decoder_layers: 'a positive integer',
  encoder_attention_heads: 'a positive integer',
  decoder_attention_heads: 'a positive integer',
  encoder_ffn_dim: 'a positive integer',
  decoder_ffn_dim: 'a positive integer',
  max_source_positions: 'a positive integer (1500)',
  max_target_positions: 'a positive integer (448)',
  decoder_start_token_id: 'a non-negative integer token id',
  eos_token_id: 'a non-negative integer token id',
  pad_token_id: 'a non-negative integer token id or null',
  activation_function: 'the string "gelu" (Whisper uses exact GELU)',
  scale_embedding: 'a boolean',
} as const;

type ConfigKey = keyof typeof FIELD_HELP;

const positiveInt = z.number().int().positive();
const tokenId = z.number().int().nonnegative();

const hfWhisperConfig = z.object({
  model_type: z.literal('whisper'),
  vocab_size: positiveInt,
  num_mel_bins: positiveInt,
  d_model: positiveInt,
  encoder_layers: positiveInt,
  decoder_layers: positiveInt,
  encoder_attention_heads: positiveInt,
  decoder_attention_heads: positiveInt,
  encoder_ffn_dim: positiveInt,
  decoder_ffn_dim: positiveInt,
  max_source_positions: positiveInt,
  max_target_positions: positiveInt,
  decoder_start_token_id: tokenId,
  eos_token_id: tokenId,
  // Not used by inference; some exported configs leave it null, so fall back to eos.
  pad_token_id: tokenId.nullish(),
  // HF defaults for these two; every released checkpoint states them explicitly anyway.
  activation_function: z.literal('gelu').default('gelu'),
  scale_embedding: z.boolean().default(false),
});

const HINT = 'check that this is the config.json of a Hugging Face Whisper checkpoint';

function fieldError(key: ConfigKey, value: unknown): EarshotError {
  const help = FIELD_HELP[key];
  const message =
    value === undefined
      ? `Whisper config.json is missing "${key}" (${help}); ${HINT}.`
      : `Whisper config.json field "${key}" must be ${help}, got ${describeValue(value)}; ${HINT}.`;
  return new EarshotError(message, 'config/invalid-field');
}

/** Parse and validate a Hugging Face Whisper `config.json` (already JSON-parsed). */
export function parseConfig(json: unknown): WhisperConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new EarshotError(
      `Whisper config.json must be a JSON object, got ${describeValue(json)}; ${HINT}.`,
      'config/not-object',
    );
  }
  const parsed = hfWhisperConfig.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const key = String(issue.path[0] ?? '') as ConfigKey;
    if (key in FIELD_HELP) throw fieldError(key, (json as Record<string, unknown>)[key]);
    throw new EarshotError(`Whisper config.json is invalid: ${issue.message}; ${HINT}.`, 'config/invalid');
  }
  const c = parsed.data;

  for (const [headsKey, heads] of [
    ['encoder_attention_heads', c.encoder_attention_heads],
    ['decoder_attention_heads', c.decoder_attention_heads],
  ] as const) {
    if (c.d_model % heads !== 0) {
      throw new EarshotError(
        `Whisper config.json: d_model ${c.d_model} is not divisible by ${headsKey} ${heads}, ` +
          `so heads cannot have equal width; ${HINT}.`,
        'config/heads-mismatch',
      );
    }
  }
  for (const key of ['decoder_start_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const id = c[key];
    if (id !== null && id !== undefined && id >= c.vocab_size) {
      throw new EarshotError(
        `Whisper config.json field "${key}" is ${id}, outside the vocabulary (vocab_size ${c.vocab_size}); ${HINT}.`,
        'config/invalid-field',
      );
    }
  }

  return {
    vocabSize: c.vocab_size,
    numMelBins: c.num_mel_bins,
    dModel: c.d_model,
    encoderLayers: c.encoder_layers,
    decoderLayers: c.decoder_layers,
    encoderHeads: c.encoder_attention_heads,
    decoderHeads: c.decoder_attention_heads,
    encoderFfnDim: c.encoder_ffn_dim,
    decoderFfnDim: c.decoder_ffn_dim,
    maxSourcePositions: c.max_source_positions,
    maxTargetPositions: c.max_target_positions,
    decoderStartTokenId: c.decoder_start_token_id,
    eosTokenId: c.eos_token_id,
    padTokenId: c.pad_token_id ?? c.eos_token_id,
    layerNormEps: 1e-5,
    activation: c.activation_function,
    scaleEmbedding: c.scale_embedding,
  };
}

/** Mel frames in one input window: the stride-2 conv halves them into encoder positions. */
export function windowFrames(c: WhisperConfig): number {
  return 2 * c.maxSourcePositions;
}

/** Audio samples at 16 kHz in one input window (hop 160 samples per mel frame). */
export function windowSamples(c: WhisperConfig): number {
  return windowFrames(c) * 160;
}

/** openai's rule: multilingual checkpoints have the 51865+ token vocabulary. */
export function isMultilingualConfig(c: WhisperConfig): boolean {
  return c.vocabSize >= 51865;
}
