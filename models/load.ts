/**
 * Builds a hooked Whisper from the three files of a Hugging Face checkpoint, given
 * as bytes/JSON so the same code serves the CLI (files on disk), the worker (Cache
 * Storage, fetch) and tests. Validation happens before any tensor is uploaded.
 */
import { parseConfig, type WhisperConfig } from './config.ts';
import { EarshotError } from './errors.ts';
import { defaultPrompt, specialIdsFromConfig, type SpecialIds } from './prompt.ts';
import { SafeTensors } from './safetensors.ts';
import { WhisperTokenizer } from './tokenizer.ts';
import { loadWeights } from './weights.ts';
import { Whisper } from './whisper.ts';

export interface CheckpointFiles {
  /** Parsed config.json. */
  config: unknown;
  /** model.safetensors bytes. */
  safetensors: Uint8Array;
  /** Parsed tokenizer.json, when the checkpoint has one. */
  tokenizer?: unknown;
}

export interface LoadedModel {
  model: Whisper;
  config: WhisperConfig;
  tokenizer: WhisperTokenizer | null;
  special: SpecialIds;
  /** Transcription prompt without timestamps. */
  prompt: number[];
}

export async function loadCheckpoint(files: CheckpointFiles): Promise<LoadedModel> {
  const config = parseConfig(files.config);
  const st = SafeTensors.parse(files.safetensors);
  const tokenizer = files.tokenizer === undefined ? null : WhisperTokenizer.fromJSON(files.tokenizer);
  const special = specialIdsFromConfig(config);
  if (tokenizer && tokenizer.special.sot !== special.sot) {
    throw new EarshotError(
      `tokenizer.json puts <|startoftranscript|> at ${tokenizer.special.sot} but config.json says ${special.sot}; use the tokenizer of the same checkpoint.`,
      'tokenizer-mismatch',
    );
  }
  const model = new Whisper(config, loadWeights(st, config));
  const prompt = tokenizer ? tokenizer.prompt({}) : defaultPrompt(special);
  return { model, config, tokenizer, special, prompt };
}
