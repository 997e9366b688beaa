import { createPrivateKey, createPublicKey, randomBytes, type KeyObject } from 'node:crypto';

/**
 * The gateway's Ed25519 request-signing key (GATEWAY_SIGNING_KEY) and its public half
 * (GATEWAY_PUBLIC_KEY), each 32 raw bytes in base64url: short enough for an environment variable,
 * and the public half can be handed to anyone.
 */

// DER wrappers of raw Ed25519 keys (RFC 8410): PKCS#8 for the 32-byte seed, SPKI for the public key.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

export class SigningKeyError extends Error {
  override name = 'SigningKeyError';
}

function rawKey(text: string, what: string): Buffer {
  const raw = Buffer.from(text.trim(), 'base64url');
  // Never echo the value: it may be the private key.
  if (raw.length !== 32 || raw.toString('base64url') !== text.trim()) throw new SigningKeyError(`${what} must be 32 bytes in base64url (43 characters)`);
  return raw;
}

/** The private key from its base64url seed (GATEWAY_SIGNING_KEY). */
export function signingKeyFromSeed(seed: string): KeyObject {
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, rawKey(seed, 'GATEWAY_SIGNING_KEY')]), format: 'der', type: 'pkcs8' });
}

/** The public key from its base64url form (GATEWAY_PUBLIC_KEY). */
export function verifyKeyFromText(text: string): KeyObject {
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, rawKey(text, 'GATEWAY_PUBLIC_KEY')]), format: 'der', type: 'spki' });
}

/** The base64url public key that belongs to a base64url seed. */
export function publicKeyOfSigningSeed(seed: string): string {
  const spki = createPublicKey(signingKeyFromSeed(seed)).export({ format: 'der', type: 'spki' });
  return spki.subarray(SPKI_PREFIX.length).toString('base64url');
}

/** A new key pair, both halves base64url. */
export function newSigningKeyPair(): { seed: string; publicKey: string } {
  const seed = randomBytes(32).toString('base64url');
  return { seed, publicKey: publicKeyOfSigningSeed(seed) };
}
