import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { isId } from '@parley/contracts';

/**
 * Refresh tokens are `<sessionId>.<secret>`: the session id finds the row, the 256-bit secret is
 * checked against its SHA-256 (a fast hash is right here: the secret is random, not guessable,
 * so there is nothing for a slow hash to protect). Only the hash is stored.
 */
export function newRefreshSecret(): string {
  return randomBytes(32).toString('base64url');
}

export function hashSecret(secret: string): Buffer {
  return createHash('sha256').update(secret).digest();
}

export function formatRefreshToken(sessionId: string, secret: string): string {
  return `${sessionId}.${secret}`;
}

export function parseRefreshToken(token: string): { sessionId: string; secret: string } | null {
  const dot = token.indexOf('.');
  if (dot <= 0) return null;
  const sessionId = token.slice(0, dot);
  const secret = token.slice(dot + 1);
  if (!isId(sessionId) || !/^[A-Za-z0-9_-]{43}$/.test(secret)) return null;
  return { sessionId, secret };
}

export function sameHash(a: Buffer | null, b: Buffer): boolean {
  return a !== null && a.length === b.length && timingSafeEqual(a, b);
}
