/**
 * Whisper's special-token ids, worked out from the config alone, for checkpoints
 * that come without tokenizer.json (the random-weight test models). The layout is
 * fixed by openai's tokenizer (NOTES.md §8): after <|startoftranscript|> come L
 * language tokens, then translate, transcribe, startoflm, startofprev, nospeech,
 * notimestamps, then 1501 timestamps; so vocab = sot + 1 + L + 6 + 1501.
 */
import type { WhisperConfig } from './config.ts';
import { EarshotError } from './errors.ts';

export interface SpecialIds {
  eot: number;
  sot: number;
  /** <|en|>, or null when the checkpoint is English-only. */
  en: number | null;
  transcribe: number;
  noTimestamps: number;
  timestampBegin: number;
  multilingual: boolean;
}

export function specialIdsFromConfig(c: WhisperConfig): SpecialIds {
  const sot = c.decoderStartTokenId;
  const languages = c.vocabSize - sot - 1508;
  if (languages < 0) {
    throw new EarshotError(
      `config.json's vocab_size ${c.vocabSize} and decoder_start_token_id ${sot} do not fit Whisper's special-token layout; add tokenizer.json to the model folder.`,
      'bad-config',
    );
  }
  // English-only checkpoints (tiny.en, …) have 51864 tokens and never emit language tokens.
  const multilingual = c.vocabSize >= 51865;
  return {
    eot: c.eosTokenId,
    sot,
    en: multilingual ? sot + 1 : null,
    transcribe: sot + languages + 2,
    noTimestamps: sot + languages + 6,
    timestampBegin: sot + languages + 7,
    multilingual,
  };
}

/** The transcription prompt without timestamps: [sot, en, transcribe, notimestamps] or [sot, notimestamps]. */
export function defaultPrompt(ids: SpecialIds): number[] {
  return ids.multilingual && ids.en !== null ? [ids.sot, ids.en, ids.transcribe, ids.noTimestamps] : [ids.sot, ids.noTimestamps];
}
