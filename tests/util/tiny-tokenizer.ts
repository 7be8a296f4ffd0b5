/** A minimal byte-level BPE tokenizer.json with Whisper's control tokens (needs no reference files). */
export function tinyTokenizerJson(specials = ['<|endoftext|>', '<|startoftranscript|>', '<|en|>', '<|de|>', '<|translate|>',
  '<|transcribe|>', '<|startoflm|>', '<|startofprev|>', '<|nospeech|>', '<|notimestamps|>', '<|0.00|>']): object {
  const vocab: Record<string, number> = { h: 0, i: 1, 'Ġ': 2 };
  specials.forEach((content, i) => (vocab[content] = 3 + i));
  return {
    version: '1.0',
    added_tokens: specials.map((content, i) => ({ id: 3 + i, content, single_word: false, lstrip: false, rstrip: false,
      normalized: false, special: true })),
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: null,
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
      fuse_unk: false, byte_fallback: false, vocab, merges: [] },
  };
}
