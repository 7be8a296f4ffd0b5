/**
 * The front end (audio, log-mel, safetensors, tokenizer) in Chromium through Vite: catches
 * CommonJS/ESM interop problems (wavefile ships UMD) that Node-only tests cannot see.
 */
import { describe, expect, it } from 'vitest';
import { decodeWav, encodeWav, loadAudio16k } from './audio.ts';
import { logMel } from './logmel.ts';
import { SafeTensors, writeSafetensors } from './safetensors.ts';
import { WhisperTokenizer } from './tokenizer.ts';

/** A minimal byte-level BPE tokenizer.json with Whisper's control tokens (English-only layout). */
function tinyTokenizerJson(): object {
  const specials = ['<|endoftext|>', '<|startoftranscript|>', '<|en|>', '<|translate|>', '<|transcribe|>',
    '<|startoflm|>', '<|startofprev|>', '<|nospeech|>', '<|notimestamps|>', '<|0.00|>'];
  const vocab: Record<string, number> = { h: 0, i: 1, 'Ġ': 2 };
  specials.forEach((content, i) => (vocab[content] = 3 + i));
  return {
    version: '1.0',
    added_tokens: specials.map((content, i) => ({ id: 3 + i, content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}

describe('front end in the browser', () => {
  it('decodes and resamples a WAV (wavefile interop)', () => {
    const wav = encodeWav([Float32Array.from({ length: 4410 }, (_, n) => 0.5 * Math.sin(n / 10))], 44100, 'pcm24');
    expect(decodeWav(wav).channels[0].length).toBe(4410);
    expect(loadAudio16k(wav).length).toBe(1600);
  });

  it('computes a 3000-frame log-mel', () => {
    const mel = logMel(Float32Array.from({ length: 16000 }, (_, n) => Math.sin(n / 7)), { nMels: 80, nFrames: 3000 });
    expect(mel.length).toBe(80 * 3000);
    expect(mel.every(Number.isFinite)).toBe(true);
  });

  it('reads safetensors', () => {
    const st = SafeTensors.parse(writeSafetensors({ a: { shape: [2], data: new Float32Array([1, 2]), dtype: 'F16' } }));
    expect([...st.getF32('a')]).toEqual([1, 2]);
  });

  it('tokenizes with @huggingface/tokenizers', () => {
    const tok = new WhisperTokenizer(tinyTokenizerJson(), { multilingual: true });
    expect(tok.encode(' hi')).toEqual([2, 0, 1]);
    expect(tok.decode([4, 2, 0, 1, 12])).toBe(' hi');
    expect(tok.prompt()).toEqual([4, 5, 7, 11]);
  });
});
