import { describe, expect, it } from 'vitest';
import { inputIssue } from './input.js';

describe('inputIssue: what no schema says about client input', () => {
  it('accepts ordinary JSON, emoji and other astral characters included', () => {
    expect(inputIssue({ body: 'привет 👋', list: [1, 'a', { ok: true }], n: null })).toBeNull();
    expect(inputIssue('plain')).toBeNull();
    expect(inputIssue(42)).toBeNull();
  });

  it('refuses U+0000 in a value or a key, naming where', () => {
    expect(inputIssue({ a: ['x', 'y\u0000'] })).toMatchObject({ path: '/a/1' });
    expect(inputIssue({ 'k\u0000': 1 })).toMatchObject({ path: '/k\u0000', message: expect.stringMatching(/^Key:/) });
  });

  it('refuses lone surrogates, high or low', () => {
    expect(inputIssue({ body: 'a\ud800b' })).toMatchObject({ path: '/body' });
    expect(inputIssue({ body: 'a\udc00' })).toMatchObject({ path: '/body' });
    expect(inputIssue({ body: '\ud83d\udc4b' })).toBeNull();
  });

  it('refuses nesting past the limit without recursing (100,000 levels)', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(inputIssue(deep)).toMatchObject({ message: 'Nested deeper than 32 levels' });
    let ok: unknown = 1;
    for (let i = 0; i < 32; i++) ok = { a: ok };
    expect(inputIssue(ok)).toBeNull();
    expect(inputIssue({ a: ok })).not.toBeNull();
  });
});
