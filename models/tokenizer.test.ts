import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { EarshotError } from './errors.ts';
import { WhisperTokenizer } from './tokenizer.ts';
import { tinyTokenizerJson } from '../tests/util/tiny-tokenizer.ts';

// Shared reference tokenizers (built from openai's .tiktoken files) — read, never copied.
const REF = fileURLToPath(new URL('../../shared/reference/whisper-tokenizer/', import.meta.url));
const haveRef = existsSync(`${REF}multilingual/tokenizer.json`) && existsSync(`${REF}english/tokenizer.json`);
if (!haveRef) console.warn('tokenizer tests skipped: ../shared/reference/whisper-tokenizer is absent');

const readJson = (path: string): Record<string, unknown> => JSON.parse(readFileSync(path, 'utf8'));

// EXPECTED.md §C4 / §C1 / §E
const QUILTER_GOSPEL = ' Mr. Quilter is the apostle of the middle classes and we are glad to welcome his gospel';
const QUILTER_C4 = [2221, 13, 2326, 388, 391, 307, 264, 50244, 295, 264, 2808, 5359, 293, 321, 366, 5404, 281, 2928, 702, 14943];
const QUILTER_COMMA = ' Mr. Quilter is the apostle of the middle classes, and we are glad to welcome his';
const QUILTER_C1 = [1770, 13, 2264, 346, 353, 318, 262, 46329, 286, 262, 3504, 6097, 11, 290, 356, 389, 9675, 284, 7062, 465];
const JFK = ' And so my fellow Americans ask not what your country can do for you, ask what you can do for your country.';
const JFK_MULTI = [400, 370, 452, 7177, 6280, 1029, 406, 437, 428, 1941, 393, 360, 337, 291, 11, 1029, 437, 291, 393, 360, 337, 428, 1941, 13];
const JFK_GPT2 = [843, 523, 616, 5891, 3399, 1265, 407, 644, 534, 1499, 460, 466, 329, 345, 11, 1265, 644, 345, 460, 466, 329, 534, 1499, 13];
const JFK_NO_COMMA = ' And so my fellow Americans ask not what your country can do for you ask what you can do for your country.';
const JFK_NO_COMMA_MULTI = [400, 370, 452, 7177, 6280, 1029, 406, 437, 428, 1941, 393, 360, 337, 291, 1029, 437, 291, 393, 360, 337, 428, 1941, 13];

describe.skipIf(!haveRef)('WhisperTokenizer (multilingual, tiny)', () => {
  let tok: WhisperTokenizer;
  beforeAll(() => {
    tok = WhisperTokenizer.fromJSON(readJson(`${REF}multilingual/tokenizer.json`));
  });

  it('resolves the special tokens by name (NOTES.md §8)', () => {
    const s = tok.special;
    expect([s.eot, s.sot, s.translate, s.transcribe, s.startOfLm, s.startOfPrev, s.noSpeech, s.noTimestamps, s.timestampBegin])
      .toEqual([50257, 50258, 50358, 50359, 50360, 50361, 50362, 50363, 50364]);
    expect(s.languages.get('en')).toBe(50259);
    expect(s.languages.get('zh')).toBe(50260);
    expect(s.languages.get('ja')).toBe(50266);
    expect(s.languages.get('su')).toBe(50357);
    expect(s.languages.size).toBe(99);
    expect(tok.languageCodes().slice(0, 4)).toEqual(['en', 'zh', 'de', 'es']);
    expect(tok.isMultilingual).toBe(true);
    expect(tok.vocabSize).toBe(51865);
  });

  it('encodes EXPECTED.md §C4 and §E exactly', () => {
    expect(tok.encode(QUILTER_GOSPEL)).toEqual(QUILTER_C4);
    expect(tok.encode(JFK)).toEqual(JFK_MULTI);
    expect(tok.encode(JFK_NO_COMMA)).toEqual(JFK_NO_COMMA_MULTI);
    expect(tok.encode(',')).toEqual([11]);
    expect(tok.encode('.')).toEqual([13]);
    expect(tok.encode('')).toEqual([]);
  });

  it('builds the openai prompts', () => {
    expect(tok.prompt()).toEqual([50258, 50259, 50359, 50363]);
    expect(tok.prompt({ timestamps: true })).toEqual([50258, 50259, 50359]);
    expect(tok.prompt({ language: 'de', task: 'translate' })).toEqual([50258, 50261, 50358, 50363]);
    expect(tok.prompt({ language: 'FR' })).toEqual([50258, 50265, 50359, 50363]);
    expect(() => tok.prompt({ language: 'xx' })).toThrowError(/unknown language "xx"/);
    expect(() => tok.prompt({ task: 'summarise' as never })).toThrowError(EarshotError);
  });

  it('decodes, dropping control and timestamp tokens unless asked', () => {
    expect(tok.decode(QUILTER_C4)).toBe(QUILTER_GOSPEL);
    expect(tok.decode(JFK_MULTI)).toBe(JFK);
    const withControls = [...tok.prompt({ timestamps: true }), 50364, ...QUILTER_C4.slice(0, 2), 50365 + 99, 50257];
    expect(tok.decode(withControls)).toBe(' Mr.');
    expect(tok.decode(withControls, { skipSpecial: false }))
      .toBe('<|startoftranscript|><|en|><|transcribe|><|0.00|> Mr.<|2.00|><|endoftext|>');
  });

  it('round-trips arbitrary Unicode text', () => {
    for (const text of [' héllo wörld', ' 日本語のテキスト', ' emoji 😀🎙️', " it's — “quoted”", '  two  spaces\n', ' ß ẞ ﬁ']) {
      expect(tok.decode(tok.encode(text))).toBe(text);
    }
  });

  it('names tokens for display', () => {
    expect(tok.tokenToString(2221)).toBe(' Mr');
    expect(tok.tokenToString(50259)).toBe('<|en|>');
    expect(tok.tokenToString(50363)).toBe('<|notimestamps|>');
    expect(tok.tokenToString(51864)).toBe('<|30.00|>');
    expect(tok.timestampSeconds(50364 + 62)).toBe(1.24);
    expect(tok.isTimestamp(50363)).toBe(false);
  });

  it('refuses control tokens written as text and out-of-range ids', () => {
    expect(() => tok.encode('hello <|en|> world')).toThrowError(/control token <\|en\|>/);
    expect(() => tok.encode('at <|1.00|>')).toThrowError(EarshotError);
    expect(tok.encode('a <|notatoken|> b').length).toBeGreaterThan(3); // unknown names are plain text
    expect(() => tok.decode([51865])).toThrowError(/outside the vocabulary/);
    expect(() => tok.decode([-1])).toThrowError(EarshotError);
    expect(() => tok.tokenToString(1.5)).toThrowError(EarshotError);
  });
});

describe.skipIf(!haveRef)('WhisperTokenizer (English-only, tiny.en)', () => {
  let tok: WhisperTokenizer;
  beforeAll(() => {
    tok = new WhisperTokenizer(readJson(`${REF}english/tokenizer.json`));
  });

  it('finds every special token one id lower', () => {
    const s = tok.special;
    expect([s.eot, s.sot, s.translate, s.transcribe, s.startOfPrev, s.noSpeech, s.noTimestamps, s.timestampBegin])
      .toEqual([50256, 50257, 50357, 50358, 50360, 50361, 50362, 50363]);
    expect(s.languages.get('en')).toBe(50258);
    expect(tok.isMultilingual).toBe(false);
    expect(tok.vocabSize).toBe(51864);
  });

  it('encodes EXPECTED.md §C1 and §E exactly and decodes them back', () => {
    expect(tok.encode(QUILTER_COMMA)).toEqual(QUILTER_C1);
    expect(tok.decode(QUILTER_C1)).toBe(QUILTER_COMMA);
    expect(tok.encode(JFK)).toEqual(JFK_GPT2);
    expect(tok.decode(JFK_GPT2)).toBe(JFK);
  });

  it('builds the tiny.en prompt and refuses other languages and translation', () => {
    expect(tok.prompt()).toEqual([50257, 50362]);
    expect(tok.prompt({ timestamps: true })).toEqual([50257]);
    expect(() => tok.prompt({ language: 'de' })).toThrowError(/English-only/);
    expect(() => tok.prompt({ task: 'translate' })).toThrowError(EarshotError);
    expect(tok.decode([50257, 50362, ...QUILTER_C1.slice(0, 2), 50256])).toBe(' Mr.');
  });
});

describe.skipIf(!haveRef)('WhisperTokenizer with other tokenizer.json layouts', () => {
  let base: Record<string, unknown>;
  beforeAll(() => {
    base = readJson(`${REF}multilingual/tokenizer.json`);
  });
  const addedTokens = (json: Record<string, unknown>) => json.added_tokens as { id: number; content: string; special: boolean }[];

  it('accepts the older hub names (<|nocaptions|>, no timestamp tokens, timestamps not special)', () => {
    const older = {
      ...base,
      added_tokens: addedTokens(base)
        .filter((t) => !/^<\|\d+\.\d\d\|>$/.test(t.content))
        .map((t) => (t.content === '<|nospeech|>' ? { ...t, content: '<|nocaptions|>' } : t)),
    };
    const tok = new WhisperTokenizer(older);
    expect(tok.special.noSpeech).toBe(50362);
    expect(tok.special.timestampBegin).toBe(50364);
    expect(tok.vocabSize).toBe(51865);
    expect(tok.decode([50364, 2221, 51864])).toBe(' Mr');
    expect(tok.decode([50364, 2221], { skipSpecial: false })).toBe('<|0.00|> Mr');

    const unflagged = { ...base, added_tokens: addedTokens(base).map((t) => ({ ...t, special: t.content.includes('.') ? false : t.special })) };
    expect(new WhisperTokenizer(unflagged).decode([50364, 2221])).toBe(' Mr');
  });

  it('names the missing special token', () => {
    const broken = { ...base, added_tokens: addedTokens(base).filter((t) => t.content !== '<|transcribe|>') };
    try {
      new WhisperTokenizer(broken);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EarshotError);
      expect((err as EarshotError).message).toContain('<|transcribe|>');
      expect((err as EarshotError).code).toBe('tokenizer/missing-special');
    }
  });
});

describe('WhisperTokenizer on a minimal tokenizer.json', () => {
  it('resolves specials, languages and prompts without hard-coded ids', () => {
    const tok = new WhisperTokenizer(tinyTokenizerJson());
    expect(tok.special).toMatchObject({ eot: 3, sot: 4, translate: 7, transcribe: 8, startOfLm: 9, startOfPrev: 10,
      noSpeech: 11, noTimestamps: 12, timestampBegin: 13 });
    expect(tok.languageCodes()).toEqual(['en', 'de']);
    expect(tok.isMultilingual).toBe(false); // small vocabulary: openai's n_vocab rule says English-only
    expect(tok.prompt()).toEqual([4, 12]);
    const multi = new WhisperTokenizer(tinyTokenizerJson(), { multilingual: true });
    expect(multi.prompt({ language: 'de', task: 'translate', timestamps: true })).toEqual([4, 6, 7]);
    expect(multi.encode(' hi')).toEqual([2, 0, 1]);
    expect(multi.decode([4, 6, 8, 12, 13, 2, 0, 1, 14, 3])).toBe(' hi');
    expect(multi.decode([13, 2, 0, 1, 14], { skipSpecial: false })).toBe('<|0.00|> hi<|0.02|>');
  });

  it('works without <|startoflm|>, which Whisper never uses', () => {
    const tok = new WhisperTokenizer(tinyTokenizerJson(['<|endoftext|>', '<|startoftranscript|>', '<|en|>', '<|translate|>',
      '<|transcribe|>', '<|startofprev|>', '<|nospeech|>', '<|notimestamps|>']));
    expect(tok.special.startOfLm).toBeNull();
    expect(tok.special.timestampBegin).toBe(11); // right after <|notimestamps|>, openai's layout
  });
});

describe('WhisperTokenizer input validation', () => {
  it('rejects things that are not a tokenizer.json', () => {
    for (const bad of [null, 'tokenizer', [], { version: '1.0' }]) {
      expect(() => new WhisperTokenizer(bad)).toThrowError(EarshotError);
    }
  });
});
