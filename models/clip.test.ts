import { describe, expect, it } from 'vitest';
import { samplesToMel } from './clip.ts';
import type { WhisperConfig } from './config.ts';
import { isEarshotError } from './errors.ts';

const config = { numMelBins: 80, maxSourcePositions: 100 } as WhisperConfig; // a 2 s window

function errorOf(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('samplesToMel', () => {
  const tone = Float32Array.from({ length: 8000 }, (_, i) => 0.3 * Math.sin(i / 10));

  it('computes the window-length log-mel of a normal clip without warnings', () => {
    const c = samplesToMel(tone, config, { label: 'clean clip' });
    expect(c.mel).toHaveLength(80 * 200);
    expect(c.seconds).toBe(0.5);
    expect(c.warnings).toEqual([]);
  });

  it('warns about silence and clipping but still runs', () => {
    const silent = samplesToMel(new Float32Array(4000), config, { label: 'clean clip' });
    expect(silent.warnings[0]).toMatch(/clean clip is silent/);
    expect(silent.mel.every(Number.isFinite)).toBe(true);
    const loud = samplesToMel(tone.map((x) => Math.sign(x)), config);
    expect(loud.warnings[0]).toMatch(/clipped/);
  });

  it('refuses empty clips, NaN and infinite samples with the time of the bad sample', () => {
    expect(isEarshotError(errorOf(() => samplesToMel(new Float32Array(0), config)), 'empty-audio')).toBe(true);
    const nan = tone.slice();
    nan[1600] = NaN;
    const e = errorOf(() => samplesToMel(nan, config, { label: 'corrupted clip' }));
    expect(isEarshotError(e, 'bad-samples')).toBe(true);
    expect((e as Error).message).toMatch(/corrupted clip has a NaN sample at 0\.100 s/);
    const inf = tone.slice();
    inf[0] = -Infinity;
    expect(isEarshotError(errorOf(() => samplesToMel(inf, config)), 'bad-samples')).toBe(true);
  });

  it('refuses clips longer than the window unless asked to trim, and says so when it trims', () => {
    const long = new Float32Array(40000).fill(0.1);
    const e = errorOf(() => samplesToMel(long, config, { label: 'a.wav' }));
    expect(isEarshotError(e, 'too-long')).toBe(true);
    expect((e as Error).message).toMatch(/a\.wav is 2\.50 s long but the model hears 2 s at a time/);
    const t = samplesToMel(long, config, { trim: true });
    expect(t.samples).toHaveLength(32000);
    expect(t.trimmed).toBe(true);
    expect(t.warnings.join(' ')).toMatch(/trimmed to its first 2 s/);
  });
});
