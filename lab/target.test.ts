import { describe, expect, it } from 'vitest';
import { chooseTarget } from './target.ts';
import { isEarshotError } from '../models/errors.ts';

describe('chooseTarget', () => {
  const prompt = [50258, 50259, 50359, 50363];
  it('picks the first differing token and the shared prefix', () => {
    const c = chooseTarget(prompt, [10, 20, 30], [10, 21, 30], 50257);
    expect(c).toMatchObject({ prefix: [...prompt, 10], target: 20, foil: 21, index: 1 });
  });
  it('uses <|endoftext|> for a transcript that ends early', () => {
    expect(chooseTarget(prompt, [10, 20], [10], 50257)).toMatchObject({ target: 20, foil: 50257, index: 1 });
    expect(chooseTarget(prompt, [10], [10, 7], 50257)).toMatchObject({ target: 50257, foil: 7 });
  });
  it('refuses identical transcripts with a message saying what to do', () => {
    let err: unknown;
    try {
      chooseTarget(prompt, [1, 2], [1, 2], 50257);
    } catch (e) {
      err = e;
    }
    expect(isEarshotError(err, 'same-transcript')).toBe(true);
    expect((err as Error).message).toMatch(/choose the target and foil/);
  });
});
