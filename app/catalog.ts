/**
 * What the model picker and the clip presets offer. The demo entries point at files this
 * site serves (vite.config.ts serves them in dev and emits them into the build).
 */
import type { ModelSource } from '../workers/protocol.ts';

/** Shown wherever the demo model appears, so nobody reads meaning into its output. */
export const DEMO_MODEL_NOTE = 'random-weight demo model: its outputs are meaningless, it exercises the pipeline';

export interface HubChoice {
  repo: string;
  /** Rough download size, to set expectations before a long download. */
  size: string;
}

export const HUB_MODELS: readonly HubChoice[] = [
  { repo: 'openai/whisper-tiny', size: '151 MB' },
  { repo: 'openai/whisper-tiny.en', size: '151 MB' },
  { repo: 'openai/whisper-base', size: '290 MB' },
];

export function demoSource(): ModelSource {
  return { type: 'demo', baseUrl: new URL('models/demo/', document.baseURI).href };
}

export interface ClipPreset {
  id: string;
  /** The word spoken in the clip. */
  word: string;
  url: () => string;
}

export const CLIP_PRESETS: readonly ClipPreset[] = [
  { id: 'bat', word: 'bat', url: () => new URL('clips/bat.wav', document.baseURI).href },
  { id: 'pat', word: 'pat', url: () => new URL('clips/pat.wav', document.baseURI).href },
];
