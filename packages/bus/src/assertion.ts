import type { SignedRequest } from '@parley/contracts';
import { randomBytes, sign, verify, type KeyObject } from 'node:crypto';
import { signingKeyFromSeed, verifyKeyFromText } from '@parley/secrets';

/**
 * The gateway's signature on a request it sends for a user (docs/security.md, "Identity on the
 * bus"). The gateway is where a client's access token is checked; the services behind it must not
 * take a user id in a request body on trust, since anyone allowed to publish on the subject could
 * write one. So the gateway signs every request it makes for a user with an Ed25519 key only it
 * holds, and the services verify with the public half:
 *
 *   Parley-Assertion: v1.<expires ms>.<id>.<signature>
 *   signature = Ed25519(private, "v1\n<subject>\n<expires ms>\n<id>\n" + payload bytes)
 *
 * The signature covers the subject (a request for messages cannot be replayed to users, nor one
 * method's to another), every byte of the payload (the user, session, client address and body are
 * all inside it), and an expiry 30 s ahead. Each verifier remembers the ids it accepted until they
 * expire, so a captured request cannot be replayed to the same process either.
 */
export const ASSERTION_HEADER = 'Parley-Assertion';
const VERSION = 'v1';
export const ASSERTION_LIFETIME_MS = 30_000;

function signedBytes(subject: string, expires: number, id: string, payload: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${VERSION}\n${subject}\n${expires}\n${id}\n`), payload]);
}

export class RequestSigner {
  private readonly key: KeyObject;

  constructor(seed: string) {
    this.key = signingKeyFromSeed(seed);
  }

  /** The header value that makes `payload`, sent on `subject`, a request of the gateway's. */
  assert(subject: string, payload: Uint8Array, now = Date.now()): string {
    const expires = now + ASSERTION_LIFETIME_MS;
    const id = randomBytes(12).toString('base64url');
    const signature = sign(null, signedBytes(subject, expires, id, payload), this.key).toString('base64url');
    return `${VERSION}.${expires}.${id}.${signature}`;
  }
}

/** Why a request was refused; never says more than this to the caller. */
export type AssertionProblem = 'missing' | 'malformed' | 'expired' | 'bad signature' | 'replayed';


export class RequestVerifier {
  private readonly key: KeyObject;
  /** Accepted ids until they expire (insertion order is roughly expiry order). */
  private readonly seen = new Map<string, number>();

  constructor(publicKey: string) {
    this.key = verifyKeyFromText(publicKey);
  }

  /**
   * Checks a request's assertion. `replay: false` is for proofs passed on by another service
   * (the same signed request may back several lookups it makes for that one request).
   */
  check(subject: string, assertion: string | undefined, payload: Uint8Array, options: { replay?: boolean; now?: number } = {}): AssertionProblem | null {
    if (!assertion) return 'missing';
    const parts = assertion.split('.');
    if (parts.length !== 4 || parts[0] !== VERSION) return 'malformed';
    const [, expiresText, id, signature] = parts as [string, string, string, string];
    const expires = Number(expiresText);
    if (!Number.isSafeInteger(expires) || id.length === 0 || signature.length === 0) return 'malformed';
    const now = options.now ?? Date.now();
    if (expires < now) return 'expired';
    const valid = verify(null, signedBytes(subject, expires, id, payload), this.key, Buffer.from(signature, 'base64url'));
    if (!valid) return 'bad signature';
    if (options.replay === false) return null;
    this.forgetExpired(now);
    if (this.seen.has(id)) return 'replayed';
    this.seen.set(id, expires);
    return null;
  }

  /** Checks a proof passed on by another service (see SignedRequest); returns its parsed payload. */
  checkProof(proof: SignedRequest | undefined, expectedSubject: string): { problem: AssertionProblem | null; payload: unknown } {
    if (!proof || typeof proof.assertion !== 'string' || typeof proof.payload !== 'string' || proof.subject !== expectedSubject) return { problem: 'missing', payload: null };
    const bytes = Buffer.from(proof.payload, 'base64');
    const problem = this.check(proof.subject, proof.assertion, bytes, { replay: false });
    if (problem) return { problem, payload: null };
    try {
      return { problem: null, payload: JSON.parse(bytes.toString('utf8')) };
    } catch {
      return { problem: 'malformed', payload: null };
    }
  }

  private forgetExpired(now: number): void {
    for (const [id, expires] of this.seen) {
      if (expires >= now) break;
      this.seen.delete(id);
    }
  }
}
