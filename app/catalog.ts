/**
 * What the model picker offers. The demo model is served by this site (vite.config.ts serves
 * it in dev and emits it into the build); the built-in clip pairs are in presets.ts.
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
