/**
 * "Check this model" in the app: which hub repo holds a checkpoint's ONNX export, and which
 * picked file is the encoder and which the decoder.
 */
import { describe, expect, it } from 'vitest';
import { formatDiff, onnxExportRepo, pickOnnxFiles } from '../../app/check-model.ts';

describe('onnxExportRepo', () => {
  it('maps openai/whisper-* to onnx-community/whisper-*', () => {
    expect(onnxExportRepo('openai/whisper-tiny')).toBe('onnx-community/whisper-tiny');
    expect(onnxExportRepo('openai/whisper-tiny.en')).toBe('onnx-community/whisper-tiny.en');
    expect(onnxExportRepo('openai/whisper-base')).toBe('onnx-community/whisper-base');
    expect(onnxExportRepo('openai/whisper-large-v3-turbo')).toBe('onnx-community/whisper-large-v3-turbo');
    expect(onnxExportRepo('  openai/whisper-small ')).toBe('onnx-community/whisper-small');
  });

  it('keeps a repo that is already an export', () => {
    expect(onnxExportRepo('onnx-community/whisper-base.en')).toBe('onnx-community/whisper-base.en');
    expect(onnxExportRepo('Xenova/whisper-tiny')).toBe('Xenova/whisper-tiny');
  });

  it('has no guess for other repos (the person types one)', () => {
    for (const repo of ['someone/whisper-tiny-finetuned', 'distil-whisper/distil-small.en', 'openai/gpt2-whisper/x', 'openai/', '', 'whisper-tiny', 'openai/clip-vit']) {
      expect(onnxExportRepo(repo), repo).toBeNull();
    }
  });
});

describe('pickOnnxFiles', () => {
  const f = (...names: string[]) => names.map((name) => ({ name }));

  it('finds the encoder and the decoder by name, in any order', () => {
    expect(pickOnnxFiles(f('decoder_model.onnx', 'encoder_model.onnx'))).toEqual({ encoder: { name: 'encoder_model.onnx' }, decoder: { name: 'decoder_model.onnx' } });
    expect(pickOnnxFiles(f('encoder_model_fp16.onnx', 'decoder_model_fp16.onnx')).decoder.name).toBe('decoder_model_fp16.onnx');
  });

  it('refuses the KV-cache decoder, other files, and wrong counts with one sentence', () => {
    expect(() => pickOnnxFiles(f('encoder_model.onnx', 'decoder_model_merged.onnx'))).toThrow(/KV-cache decoder; pick decoder_model\.onnx/);
    expect(() => pickOnnxFiles(f('encoder_model.onnx', 'decoder_with_past_model.onnx'))).toThrow(/KV-cache/);
    expect(() => pickOnnxFiles(f('encoder_model.onnx', 'config.json'))).toThrow(/config\.json is not an \.onnx file/);
    expect(() => pickOnnxFiles(f('encoder_model.onnx'))).toThrow(/exactly two files/);
    expect(() => pickOnnxFiles(f('encoder_model.onnx', 'encoder_model_fp16.onnx'))).toThrow(/exactly two files/);
    expect(() => pickOnnxFiles(f('encoder_model.onnx', 'decoder_model.onnx', 'model.onnx'))).toThrow(/exactly two files/);
    expect(() => pickOnnxFiles([])).toThrow(/exactly two files/);
  });
});

describe('formatDiff', () => {
  it('writes small numbers in exponent form and keeps 0, NaN and Infinity readable', () => {
    expect(formatDiff(3.14159e-6)).toBe('3.1e-6');
    expect(formatDiff(0)).toBe('0');
    expect(formatDiff(Infinity)).toBe('Infinity');
    expect(formatDiff(NaN)).toBe('NaN');
  });
});
