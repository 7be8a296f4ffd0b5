/**
 * What the page says next to a clip (app/clip.ts): silence, clipping, repaired samples and a
 * clip longer than the model's window; and the trim that keeps one window of it. Plus the
 * size limits that refuse enormous files before they are read (models/limits.ts).
 */
import { describe, expect, it } from 'vitest';
import { CLIP_RATE, clipAdvice, trimClip, type LabClip } from '../../app/clip.ts';
import { EarshotError } from '../../models/errors.ts';
import { MAX_AUDIO_BYTES, MAX_WEIGHTS_BYTES, checkFileSize } from '../../models/limits.ts';

const tone = (seconds: number, amplitude = 0.3) => Int16Array.from({ length: Math.round(seconds * CLIP_RATE) }, (_, i) => Math.round(amplitude * 32767 * Math.sin(i / 9)));
const file = (pcm: Int16Array, notes?: string[]): LabClip => ({ origin: { kind: 'file', name: 'a.wav' }, label: 'a.wav', pcm, ...(notes ? { notes } : {}) });

describe('clipAdvice', () => {
  it('says nothing about an ordinary clip inside the window', () => {
    expect(clipAdvice(file(tone(1.5)), 30)).toEqual({ warnings: [], tooLong: null });
    expect(clipAdvice(file(tone(30)), 30).tooLong).toBeNull();
  });

  it('names silence and clipping', () => {
    expect(clipAdvice(file(new Int16Array(16000)), 30).warnings).toEqual(['This clip is silent (peak −∞ dBFS): the model will hear nothing in it.']);
    // A square-ish wave: every other sample at full scale.
    const loud = Int16Array.from({ length: CLIP_RATE }, (_, i) => (i % 2 ? 32767 : -8000));
    expect(clipAdvice(file(loud), 30).warnings).toEqual(['This clip is clipped (8000 samples at full scale): record it a little quieter.']);
  });

  it('shows what was repaired on the way in', () => {
    const note = 'a.wav had 3 NaN samples (first at 0.006 s); NaN set to 0. Re-export the audio if that matters.';
    expect(clipAdvice(file(tone(1), [note]), 30).warnings).toEqual([note]);
  });

  it('flags a clip longer than the window, with its length and the window', () => {
    expect(clipAdvice(file(tone(42)), 30).tooLong).toEqual({ seconds: 42, window: 30 });
    expect(clipAdvice(file(tone(2.5)), 2).tooLong).toEqual({ seconds: 2.5, window: 2 });
  });
});

describe('trimClip', () => {
  const long = file(tone(42), ['a note']);

  it('keeps the chosen window, bit for bit, and says which part it is', () => {
    const t = trimClip(long, 5, 35);
    expect(t.pcm).toEqual(long.pcm.slice(5 * CLIP_RATE, 35 * CLIP_RATE));
    expect(t.label).toBe('a.wav (trimmed 5.00–35.00 s)');
    expect(t.origin).toEqual({ kind: 'file', name: 'a.wav' });
    expect(t.notes).toEqual(['a note']);
    expect(clipAdvice(t, 30).tooLong).toBeNull();
  });

  it('clamps to the clip and replaces an earlier trim in the label', () => {
    const t = trimClip(trimClip(long, 40, 80), -3, 1);
    expect(t.label).toBe('a.wav (trimmed 0.00–1.00 s)');
    expect(t.pcm.length).toBe(CLIP_RATE);
    expect(trimClip(long, 50, 60).pcm.length).toBe(0);
  });

  it('turns a built-in or shared clip into the person’s own once cut', () => {
    const shared: LabClip = { origin: { kind: 'shared' }, label: 'x', pcm: tone(1) };
    expect(trimClip(shared, 0, 0.5).origin).toEqual({ kind: 'recording' });
  });
});

describe('file size limits', () => {
  it('refuse by size with what to do, and let smaller files through', () => {
    expect(() => checkFileSize('big.wav', MAX_AUDIO_BYTES, MAX_AUDIO_BYTES, 'cut it')).not.toThrow();
    const error = (() => {
      try {
        checkFileSize('model.safetensors', 5 * 1024 ** 3, MAX_WEIGHTS_BYTES, 'choose a smaller checkpoint');
      } catch (e) {
        return e;
      }
    })() as EarshotError;
    expect(error).toBeInstanceOf(EarshotError);
    expect(error.code).toBe('too-large');
    expect(error.message).toBe('model.safetensors is 5.0 GB, more than the 4.0 GB Earshot reads; choose a smaller checkpoint.');
    expect(() => checkFileSize('big.wav', 300 * 1024 ** 2, MAX_AUDIO_BYTES, 'cut it')).toThrow('big.wav is 300 MB, more than the 256 MB Earshot reads; cut it.');
  });
});
