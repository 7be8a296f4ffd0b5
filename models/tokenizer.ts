/**
 * Whisper's tokenizer, built from a Hugging Face `tokenizer.json` with `@huggingface/tokenizers`
 * (pure JS, runs in Node and the browser).
 *
 * Special tokens are looked up by name, never by hard-coded id, so the multilingual layout
 * (<|endoftext|> 50257) and the English-only one (tiny.en, every id one lower) both work, as do
 * checkpoints with an extra language (large-v3).
 */
import { Tokenizer } from '@huggingface/tokenizers';
import { EarshotError, describeValue } from './errors.ts';

/** Ids of Whisper's control tokens (NOTES.md §8). */
export interface WhisperSpecialTokens {
  eot: number;
  sot: number;
  translate: number;
  transcribe: number;
  /** <|startoflm|>, or null when the tokenizer does not define it (it is never used for decoding). */
  startOfLm: number | null;
  startOfPrev: number;
  /** <|nospeech|> (older hub tokenizers call it <|nocaptions|>). */
  noSpeech: number;
  noTimestamps: number;
  /** <|0.00|>; every id from here on is a timestamp, 0.02 s apart. */
  timestampBegin: number;
  /** Language code → token id, in id order (<|en|> first). */
  languages: ReadonlyMap<string, number>;
}

export type WhisperTask = 'transcribe' | 'translate';

export interface PromptOptions {
  /** Language code (en, de, fr, …). Default 'en'. */
  language?: string;
  task?: WhisperTask;
  /** Ask for timestamp tokens (omit <|notimestamps|>). Default false. */
  timestamps?: boolean;
}

export interface DecodeOptions {
  /** Drop control and timestamp tokens. Default true. */
  skipSpecial?: boolean;
}

export interface TokenizerOptions {
  /** Override the multilingual detection (e.g. from the model config's vocab size). */
  multilingual?: boolean;
}

/** Seconds between consecutive timestamp tokens. */
export const TIMESTAMP_STEP = 0.02;
/** <|0.00|> … <|30.00|>. */
export const TIMESTAMP_COUNT = 1501;

const REQUIRED_SPECIALS = {
  eot: '<|endoftext|>',
  sot: '<|startoftranscript|>',
  translate: '<|translate|>',
  transcribe: '<|transcribe|>',
  startOfPrev: '<|startofprev|>',
  noTimestamps: '<|notimestamps|>',
} as const;

const TOKENIZER_HINT = 'use the tokenizer.json that belongs to the Whisper checkpoint';

export class WhisperTokenizer {
  readonly special: WhisperSpecialTokens;
  readonly isMultilingual: boolean;
  /** Number of token ids, including the control and timestamp tokens. */
  readonly vocabSize: number;
  readonly #tokenizer: Tokenizer;
  /** Every control/timestamp id known by name or flagged special in the file. */
  readonly #specialIds: Set<number>;
  /** Text form of the added tokens, to refuse them inside plain text. */
  readonly #addedContents: Map<string, number>;

  constructor(tokenizerJson: unknown, options: TokenizerOptions = {}) {
    if (typeof tokenizerJson !== 'object' || tokenizerJson === null || Array.isArray(tokenizerJson) ||
      typeof (tokenizerJson as { model?: unknown }).model !== 'object') {
      throw new EarshotError(`tokenizer.json must be a JSON object with a "model" section, got ` +
        `${describeValue(tokenizerJson)}; ${TOKENIZER_HINT}.`, 'tokenizer/bad-json');
    }
    try {
      this.#tokenizer = new Tokenizer(tokenizerJson, { clean_up_tokenization_spaces: false });
    } catch (err) {
      throw new EarshotError(`tokenizer.json could not be loaded (${err instanceof Error ? err.message : String(err)}); ` +
        `${TOKENIZER_HINT}.`, 'tokenizer/bad-json');
    }

    const added = this.#tokenizer.get_added_tokens_decoder(); // id → AddedToken
    this.#addedContents = new Map([...added.values()].map((t) => [t.content, t.id]));
    const idOf = (name: string): number | undefined => this.#addedContents.get(name) ?? this.#tokenizer.token_to_id(name);
    const require = (name: string, alias?: string): number => {
      const id = idOf(name) ?? (alias === undefined ? undefined : idOf(alias));
      if (id === undefined) {
        throw new EarshotError(`tokenizer.json has no ${name} token, so it is not a Whisper tokenizer; ${TOKENIZER_HINT}.`,
          'tokenizer/missing-special');
      }
      return id;
    };

    const named = Object.fromEntries(
      Object.entries(REQUIRED_SPECIALS).map(([key, name]) => [key, require(name)]),
    ) as Record<keyof typeof REQUIRED_SPECIALS, number>;
    const noSpeech = require('<|nospeech|>', '<|nocaptions|>');
    // Hub tokenizers from before Sept 2023 lack the timestamp tokens; openai's layout puts
    // them right after <|notimestamps|>, so the ids are still known.
    const timestampBegin = idOf('<|0.00|>') ?? named.noTimestamps + 1;

    // Language tokens sit between <|startoftranscript|> and <|translate|>.
    const languages = new Map<string, number>();
    for (let id = named.sot + 1; id < named.translate; id++) {
      const content = added.get(id)?.content ?? this.#tokenizer.id_to_token(id);
      const match = content === undefined ? null : /^<\|([a-z]{2,3})\|>$/.exec(content);
      if (match) languages.set(match[1], id);
    }

    this.special = { ...named, noSpeech, startOfLm: idOf('<|startoflm|>') ?? null, timestampBegin, languages };

    let largestId = 0;
    for (const id of this.#tokenizer.get_vocab(true).values()) largestId = Math.max(largestId, id);
    this.vocabSize = Math.max(largestId + 1, timestampBegin + TIMESTAMP_COUNT);
    // openai's rule (n_vocab ≥ 51865); the English-only vocabulary is one token shorter.
    this.isMultilingual = options.multilingual ?? this.vocabSize >= 51865;

    this.#specialIds = new Set([...added.values()].filter((t) => t.special).map((t) => t.id));
    for (const [key, value] of Object.entries(this.special)) {
      if (typeof value === 'number' && key !== 'timestampBegin') this.#specialIds.add(value);
    }
    for (const id of languages.values()) this.#specialIds.add(id);
  }

  /** Same as the constructor; reads well next to `parseConfig(json)`. */
  static fromJSON(tokenizerJson: unknown, options: TokenizerOptions = {}): WhisperTokenizer {
    return new WhisperTokenizer(tokenizerJson, options);
  }

  /** Plain text → token ids, no control tokens added (like openai's `tokenizer.encode`). */
  encode(text: string): number[] {
    if (typeof text !== 'string') {
      throw new EarshotError(`encode expects a string, got ${describeValue(text)}.`, 'tokenizer/bad-input');
    }
    if (text.includes('<|')) {
      for (const match of text.matchAll(/<\|[^<>|]*\|>/g)) {
        if (this.#addedContents.has(match[0]) || this.#timestampText(match[0])) {
          throw new EarshotError(`the text contains the control token ${match[0]}; pass control tokens as ids ` +
            '(tokenizer.special, tokenizer.prompt()) and keep the text plain.', 'tokenizer/special-in-text');
        }
      }
    }
    return this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
  }

  /** Token ids → text. By default control and timestamp tokens are dropped. */
  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    const skipSpecial = options.skipSpecial ?? true;
    ids.forEach((id) => this.#checkId(id));
    let text = '';
    let run: number[] = [];
    const flush = (): void => {
      if (run.length > 0) text += this.#decodeText(run);
      run = [];
    };
    for (const id of ids) {
      if (!this.isSpecial(id)) run.push(id);
      else if (!skipSpecial) {
        flush();
        text += this.#specialText(id);
      }
    }
    flush();
    return text;
  }

  /** Display form of one token: its name for control/timestamp tokens, else its text (" Mr"). */
  tokenToString(id: number): string {
    this.#checkId(id);
    return this.isSpecial(id) ? this.#specialText(id) : this.#decodeText([id]);
  }

  /** True for control tokens (<|en|>, <|notimestamps|>, …) and timestamps. */
  isSpecial(id: number): boolean {
    return id >= this.special.timestampBegin || this.#specialIds.has(id);
  }

  isTimestamp(id: number): boolean {
    return id >= this.special.timestampBegin && id < this.special.timestampBegin + TIMESTAMP_COUNT;
  }

  /** Seconds of a timestamp token (<|1.24|> → 1.24). */
  timestampSeconds(id: number): number {
    if (!this.isTimestamp(id)) {
      throw new EarshotError(`token ${id} is not a timestamp (timestamps are ${this.special.timestampBegin}–` +
        `${this.special.timestampBegin + TIMESTAMP_COUNT - 1}).`, 'tokenizer/bad-id');
    }
    return Math.round((id - this.special.timestampBegin) * TIMESTAMP_STEP * 100) / 100;
  }

  /** Language codes this tokenizer knows, in id order. */
  languageCodes(): string[] {
    return [...this.special.languages.keys()];
  }

  /**
   * The decoder prompt openai uses: [sot, language, task] (+ <|notimestamps|>) for multilingual
   * models, [sot] (+ <|notimestamps|>) for English-only ones.
   */
  prompt(options: PromptOptions = {}): number[] {
    const language = (options.language ?? 'en').toLowerCase();
    const task = options.task ?? 'transcribe';
    if (task !== 'transcribe' && task !== 'translate') {
      throw new EarshotError(`unknown task ${describeValue(task)}; use 'transcribe' or 'translate'.`, 'tokenizer/bad-task');
    }
    const tail = options.timestamps ? [] : [this.special.noTimestamps];
    if (!this.isMultilingual) {
      if (language !== 'en' || task !== 'transcribe') {
        throw new EarshotError(`this English-only checkpoint can only transcribe English (asked for ${task} in ` +
          `"${language}"); load a multilingual checkpoint such as openai/whisper-tiny.`, 'tokenizer/english-only');
      }
      return [this.special.sot, ...tail];
    }
    const languageId = this.special.languages.get(language);
    if (languageId === undefined) {
      throw new EarshotError(`unknown language "${language}"; use a code like en, de, fr or zh (this tokenizer knows ` +
        `${this.special.languages.size} languages).`, 'tokenizer/bad-language');
    }
    return [this.special.sot, languageId, task === 'translate' ? this.special.translate : this.special.transcribe, ...tail];
  }

  #decodeText(ids: number[]): string {
    return this.#tokenizer.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  #specialText(id: number): string {
    if (this.isTimestamp(id)) return `<|${this.timestampSeconds(id).toFixed(2)}|>`;
    return this.#tokenizer.id_to_token(id) ?? `<|${id}|>`;
  }

  #timestampText(text: string): boolean {
    return /^<\|\d+\.\d\d\|>$/.test(text);
  }

  #checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new EarshotError(`token id ${describeValue(id)} is outside the vocabulary (0–${this.vocabSize - 1}); check ` +
        'that the tokenizer belongs to the model that produced the ids.', 'tokenizer/bad-id');
    }
  }
}
