/**
 * The built-in minimal pairs, made by tools/presets/make-presets.sh (espeak-ng + sox) and
 * served from presets/ beside index.html (app/public/presets/).
 */
import index from './presets-index.json' with { type: 'json' };

export interface PairPreset {
  id: string;
  /** What the clean and the corrupted clip say. */
  clean: string;
  corrupt: string;
  /** The sound that differs, in words. */
  differs: string;
}

export const PAIR_PRESETS: readonly PairPreset[] = index.pairs;

export function pairPreset(id: string): PairPreset | undefined {
  return PAIR_PRESETS.find((p) => p.id === id);
}

/** URL of one clip of a built-in pair, relative to the page (works under any sub-path). */
export function presetClipUrl(id: string, which: 'clean' | 'corrupt', base: string): string {
  return new URL(`presets/${encodeURIComponent(id)}.${which}.wav`, base).href;
}
