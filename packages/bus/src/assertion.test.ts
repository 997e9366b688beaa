import { describe, expect, it } from 'vitest';
import { newSigningKeyPair } from '@parley/secrets';
import { ASSERTION_LIFETIME_MS, RequestSigner, RequestVerifier } from './assertion.js';

const keys = newSigningKeyPair();
const signer = new RequestSigner(keys.seed);
const payload = Buffer.from(JSON.stringify({ method: 'GET', path: '/api/v1/chats', auth: { userId: 'u1', sessionId: 's1' } }));
const subject = 'parley.api.messages';

describe('gateway request assertions', () => {
  it('accepts a request as signed, once', () => {
    const verifier = new RequestVerifier(keys.publicKey);
    const assertion = signer.assert(subject, payload);
    expect(verifier.check(subject, assertion, payload)).toBeNull();
    expect(verifier.check(subject, assertion, payload)).toBe('replayed');
  });

  it('refuses it on another subject, with another payload, after its expiry, or unsigned', () => {
    const verifier = new RequestVerifier(keys.publicKey);
    const assertion = signer.assert(subject, payload);
    expect(verifier.check('parley.api.users', assertion, payload)).toBe('bad signature');
    expect(verifier.check(subject, assertion, Buffer.from(payload.toString().replace('u1', 'u2')))).toBe('bad signature');
    expect(verifier.check(subject, assertion, payload, { now: Date.now() + ASSERTION_LIFETIME_MS + 1 })).toBe('expired');
    expect(verifier.check(subject, undefined, payload)).toBe('missing');
    expect(verifier.check(subject, 'v1.garbage', payload)).toBe('malformed');
    expect(verifier.check(subject, assertion.replace(/^v1/, 'v2'), payload)).toBe('malformed');
  });

  it('refuses an expiry pushed forward: the expiry is signed too', () => {
    const verifier = new RequestVerifier(keys.publicKey);
    const [v, expires, id, signature] = signer.assert(subject, payload, Date.now() - 2 * ASSERTION_LIFETIME_MS).split('.');
    expect(verifier.check(subject, [v, Number(expires) + 10 * ASSERTION_LIFETIME_MS, id, signature].join('.'), payload)).toBe('bad signature');
  });

  it("refuses another key's signature", () => {
    const verifier = new RequestVerifier(newSigningKeyPair().publicKey);
    expect(verifier.check(subject, signer.assert(subject, payload), payload)).toBe('bad signature');
  });

  it('checks a proof passed on by another service, without spending it', () => {
    const verifier = new RequestVerifier(keys.publicKey);
    const proof = { subject, assertion: signer.assert(subject, payload), payload: payload.toString('base64') };
    expect(verifier.checkProof(proof, subject)).toEqual({ problem: null, payload: JSON.parse(payload.toString()) });
    expect(verifier.checkProof(proof, subject).problem).toBeNull();
    expect(verifier.checkProof(proof, 'parley.api.users').problem).toBe('missing');
    expect(verifier.checkProof({ ...proof, payload: Buffer.from('{"auth":{"userId":"u2"}}').toString('base64') }, subject).problem).toBe('bad signature');
    expect(verifier.checkProof(undefined, subject).problem).toBe('missing');
  });
});
