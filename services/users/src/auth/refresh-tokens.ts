import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isId } from '@parley/contracts';

/**
 * Refresh tokens are `<sessionId>.<secret>`: the session id finds the row, the 256-bit secret is
 * checked against its SHA-256 (a fast hash is right here: the secret is random, not guessable,
 * so there is nothing for a slow hash to protect). Only the hash is stored.
 */
export function newRefreshSecret(): string {
  return randomBytes(32).toString('base64url');
}

/**
 * The secret a rotation gives after `secret`: derived with a key from JWT_SECRET, so that every
 * earlier secret of a session leads, step by step, to its current one. A replayed token however
 * many rotations old is then known for a stolen one (rotateRefresh), where a random new secret
 * told only the last one apart from a made-up one. Without the key, a holder of one secret cannot
 * work out the next. The gateway and the backup job hold JWT_SECRET too (they can sign access
 * tokens with it anyway); a key of its own for the users service alone is left for later.
 */
export function nextRefreshSecret(chainKey: Buffer, secret: string): string {
  return createHmac('sha256', chainKey).update(secret).digest('base64url');
}

/** The key of nextRefreshSecret, derived from JWT_SECRET (a key of its own for this one use). */
export function refreshChainKey(jwtSecret: string): Buffer {
  return createHmac('sha256', jwtSecret).update('parley refresh-token chain v1').digest();
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
