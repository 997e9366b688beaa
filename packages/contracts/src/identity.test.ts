import { describe, expect, it } from 'vitest';
import { identityKey } from './identity.js';

describe('identityKey: one normalisation for claims, the unique index and lookups', () => {
  it('ignores case, compatibility forms and sharp s', () => {
    expect(identityKey('Alice@Example.COM')).toBe('alice@example.com');
    expect(identityKey('ｆｕｌｌ@example.test')).toBe('full@example.test');
    expect(identityKey('STRASSE@x.test')).toBe(identityKey('straße@x.test'));
  });
  it('keeps dotted capital I apart from i, as the claims always did (PostgreSQL lower() merged them)', () => {
    expect(identityKey('İvan@x.test')).not.toBe(identityKey('ivan@x.test'));
    expect(identityKey('İVAN@x.test')).toBe(identityKey('i̇van@x.test'));
  });
});
