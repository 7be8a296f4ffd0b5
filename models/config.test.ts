import { describe, expect, it } from 'vitest';
import { isMultilingualConfig, parseConfig, windowFrames, windowSamples } from './config.ts';
import { EarshotError } from './errors.ts';

/** Keys as they appear in the hub's config.json files (generation-only keys kept for realism). */
function hfConfig(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _name_or_path: 'openai/whisper-tiny',
    activation_dropout: 0.0,
    activation_function: 'gelu',
    architectures: ['WhisperForConditionalGeneration'],
    begin_suppress_tokens: [220, 50257],
    bos_token_id: 50257,
    d_model: 384,
    decoder_attention_heads: 6,
    decoder_ffn_dim: 1536,
    decoder_layers: 4,
    decoder_start_token_id: 50258,
    encoder_attention_heads: 6,
    encoder_ffn_dim: 1536,
    encoder_layers: 4,
    eos_token_id: 50257,
    forced_decoder_ids: [[1, 50259], [2, 50359], [3, 50363]],
    is_encoder_decoder: true,
    max_length: 448,
    max_source_positions: 1500,
    max_target_positions: 448,
    model_type: 'whisper',
    num_hidden_layers: 4,
    num_mel_bins: 80,
    pad_token_id: 50257,
    scale_embedding: false,
    torch_dtype: 'float32',
    use_cache: true,
    vocab_size: 51865,
    ...overrides,
  };
}

const tinyEn = hfConfig({
  _name_or_path: 'openai/whisper-tiny.en',
  vocab_size: 51864,
  bos_token_id: 50257,
  decoder_start_token_id: 50257,
  eos_token_id: 50256,
  pad_token_id: 50256,
});
const base = hfConfig({ d_model: 512, encoder_attention_heads: 8, decoder_attention_heads: 8,
  encoder_ffn_dim: 2048, decoder_ffn_dim: 2048, encoder_layers: 6, decoder_layers: 6 });
const small = hfConfig({ d_model: 768, encoder_attention_heads: 12, decoder_attention_heads: 12,
  encoder_ffn_dim: 3072, decoder_ffn_dim: 3072, encoder_layers: 12, decoder_layers: 12 });
const largeV3 = hfConfig({ d_model: 1280, encoder_attention_heads: 20, decoder_attention_heads: 20,
  encoder_ffn_dim: 5120, decoder_ffn_dim: 5120, encoder_layers: 32, decoder_layers: 32,
  num_mel_bins: 128, vocab_size: 51866, pad_token_id: 50256 });

function parseError(json: unknown): EarshotError {
  try {
    parseConfig(json);
  } catch (err) {
    expect(err).toBeInstanceOf(EarshotError);
    return err as EarshotError;
  }
  throw new Error('expected parseConfig to throw');
}

describe('parseConfig', () => {
  it('reads whisper-tiny (NOTES.md §7)', () => {
    const c = parseConfig(hfConfig());
    expect(c).toEqual({
      vocabSize: 51865, numMelBins: 80, dModel: 384, encoderLayers: 4, decoderLayers: 4,
      encoderHeads: 6, decoderHeads: 6, encoderFfnDim: 1536, decoderFfnDim: 1536,
      maxSourcePositions: 1500, maxTargetPositions: 448, decoderStartTokenId: 50258,
      eosTokenId: 50257, padTokenId: 50257, layerNormEps: 1e-5, activation: 'gelu',
      scaleEmbedding: false,
    });
    expect(windowFrames(c)).toBe(3000);
    expect(windowSamples(c)).toBe(480000);
    expect(isMultilingualConfig(c)).toBe(true);
  });

  it('reads tiny.en, base, small and large-v3 style configs', () => {
    const en = parseConfig(tinyEn);
    expect([en.vocabSize, en.decoderStartTokenId, en.eosTokenId]).toEqual([51864, 50257, 50256]);
    expect(isMultilingualConfig(en)).toBe(false);
    expect(parseConfig(base)).toMatchObject({ dModel: 512, encoderHeads: 8, encoderLayers: 6 });
    expect(parseConfig(small)).toMatchObject({ dModel: 768, decoderHeads: 12, decoderFfnDim: 3072 });
    const large = parseConfig(largeV3);
    expect(large).toMatchObject({ numMelBins: 128, vocabSize: 51866, encoderLayers: 32, padTokenId: 50256 });
    expect(windowFrames(large)).toBe(3000);
  });

  it('defaults optional keys the way transformers does', () => {
    const { activation_function: _a, scale_embedding: _s, ...rest } = hfConfig({ pad_token_id: null });
    const c = parseConfig(rest);
    expect(c.activation).toBe('gelu');
    expect(c.scaleEmbedding).toBe(false);
    expect(c.padTokenId).toBe(c.eosTokenId);
  });

  it('follows max_source_positions for the window length', () => {
    const c = parseConfig(hfConfig({ max_source_positions: 750 }));
    expect(windowFrames(c)).toBe(1500);
    expect(windowSamples(c)).toBe(240000);
  });

  it('names the bad field and says what to do', () => {
    const e = parseError(hfConfig({ d_model: '384' }));
    expect(e.message).toContain('"d_model"');
    expect(e.message).toContain('"384"');
    expect(e.message).toContain('config.json of a Hugging Face Whisper checkpoint');
    expect(e.message).not.toContain('\n');
    expect(e.code).toBe('config/invalid-field');

    const { num_mel_bins: _n, ...missing } = hfConfig();
    expect(parseError(missing).message).toMatch(/missing "num_mel_bins"/);
    expect(parseError(hfConfig({ encoder_layers: 0 })).message).toContain('"encoder_layers"');
    expect(parseError(hfConfig({ vocab_size: 51865.5 })).message).toContain('"vocab_size"');
    expect(parseError(hfConfig({ model_type: 'wav2vec2' })).message).toContain('"model_type"');
    expect(parseError(hfConfig({ activation_function: 'relu' })).message).toContain('"activation_function"');
    expect(parseError(hfConfig({ scale_embedding: 'no' })).message).toContain('"scale_embedding"');
    expect(parseError(hfConfig({ eos_token_id: 60000 })).message).toContain('"eos_token_id"');
  });

  it('rejects d_model not divisible by the head count', () => {
    const e = parseError(hfConfig({ decoder_attention_heads: 5 }));
    expect(e.message).toContain('decoder_attention_heads 5');
    expect(e.code).toBe('config/heads-mismatch');
    expect(parseError(hfConfig({ encoder_attention_heads: 7 })).message).toContain('encoder_attention_heads');
  });

  it('rejects things that are not a config object', () => {
    for (const bad of [null, 42, 'config', [1, 2]]) {
      expect(parseError(bad).code).toBe('config/not-object');
    }
  });
});
