import { describe, expect, it } from 'vitest';
import { assertNamespace, NAMESPACE_PATTERN } from './namespace.js';
import { inNamespace } from './streams.js';

describe('inNamespace', () => {
  it("tells a namespace's streams and buckets from those of a namespace it is a prefix of", () => {
    for (const name of ['parley_chats', 'parley_erasures', 'KV_parley_presence', 'KV_parley_retention']) expect(inNamespace(name, 'parley'), name).toBe(true);
    for (const name of ['parley_staging_chats', 'KV_parley_staging_presence', 'parleyx_chats', 'other_chats', 'parley_']) expect(inNamespace(name, 'parley'), name).toBe(false);
    expect(inNamespace('parley_staging_chats', 'parley_staging')).toBe(true);
  });
});

describe('assertNamespace', () => {
  it('returns a valid namespace unchanged', () => {
    expect(assertNamespace('parley')).toBe('parley');
    expect(assertNamespace('t0a1b2_c-d')).toBe('t0a1b2_c-d');
    expect(assertNamespace('a')).toBe('a');
    expect(assertNamespace(`a${'b'.repeat(31)}`)).toHaveLength(32);
  });

  it.each([
    ['empty', ''],
    ['a dot (a subject separator)', 'par.ley'],
    ['a wildcard', 'par*'],
    ['a full wildcard', 'par>'],
    ['whitespace', 'par ley'],
    ['upper case', 'Parley'],
    ['a leading digit', '1parley'],
    ['a leading dash', '-parley'],
    ['33 characters', `a${'b'.repeat(32)}`],
  ])('refuses a namespace with %s', (_what, ns) => {
    expect(NAMESPACE_PATTERN.test(ns)).toBe(false);
    expect(() => assertNamespace(ns)).toThrow(/PARLEY_NAMESPACE .* is invalid/);
  });
});
