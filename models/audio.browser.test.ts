/**
 * The front end (audio, log-mel, safetensors, tokenizer) in Chromium through Vite: catches
 * CommonJS/ESM interop problems (wavefile ships UMD) that Node-only tests cannot see.
 */
import { tinyTokenizerJson } from '../tests/util/tiny-tokenizer.ts';
import { describe, expect, it } from 'vitest';
import { decodeWav, encodeWav, loadAudio16k } from './audio.ts';
import { logMel } from './logmel.ts';
import { SafeTensors, writeSafetensors } from './safetensors.ts';
import { WhisperTokenizer } from './tokenizer.ts';

/** The minimal tokenizer.json with this test's own control tokens (no <|de|>), so its ids stay as they were. */
const tinyTokenizer = () => tinyTokenizerJson(['<|endoftext|>', '<|startoftranscript|>', '<|en|>', '<|translate|>', '<|transcribe|>',
  '<|startoflm|>', '<|startofprev|>', '<|nospeech|>', '<|notimestamps|>', '<|0.00|>']);

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
    const tok = new WhisperTokenizer(tinyTokenizer(), { multilingual: true });
    expect(tok.encode(' hi')).toEqual([2, 0, 1]);
    expect(tok.decode([4, 2, 0, 1, 12])).toBe(' hi');
    expect(tok.prompt()).toEqual([4, 5, 7, 11]);
  });
});
