import { describe, expect, it } from 'vitest';
import { EarshotError, describeValue, isEarshotError } from './errors.ts';

describe('EarshotError', () => {
  it('is an Error with a name, a message and an optional code', () => {
    const err = new EarshotError('the clip is empty; record a longer clip.', 'audio/empty');
    expect(err).toBeInstanceOf(Error);
    expect(err).toBeInstanceOf(EarshotError);
    expect(err.name).toBe('EarshotError');
    expect(err.message).toBe('the clip is empty; record a longer clip.');
    expect(err.code).toBe('audio/empty');
    expect(new EarshotError('no code').code).toBeUndefined();
    expect(String(err)).toBe('EarshotError: the clip is empty; record a longer clip.');
  });

  it('is recognised by isEarshotError, optionally by code', () => {
    const err = new EarshotError('x', 'a/b');
    expect(isEarshotError(err)).toBe(true);
    expect(isEarshotError(err, 'a/b')).toBe(true);
    expect(isEarshotError(err, 'a/c')).toBe(false);
    expect(isEarshotError(new Error('x'))).toBe(false);
    expect(isEarshotError('x')).toBe(false);
  });
});

describe('describeValue', () => {
  it('renders values on one short line', () => {
    expect(describeValue(undefined)).toBe('undefined');
    expect(describeValue(12)).toBe('12');
    expect(describeValue(10n)).toBe('10');
    expect(describeValue('384')).toBe('"384"');
    expect(describeValue({ a: [1, 2] })).toBe('{"a":[1,2]}');
    expect(describeValue('a\nb')).toBe('"a\\nb"');
    expect(describeValue('x'.repeat(100))).toHaveLength(60);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(describeValue(cyclic)).toBe('[object Object]');
  });
});
