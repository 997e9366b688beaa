import { createHash, randomBytes } from 'node:crypto';

/**
 * Reset tokens are 256 random bits, base64url (43 characters). Only their SHA-256 is published and
 * stored: a fast hash is right for a random secret (nothing to guess), and a leaked stream, backup
 * or table then holds nothing that resets a password.
 */
export function newResetToken(): { token: string; hash: Buffer } {
  const token = randomBytes(32).toString('base64url');
  return { token, hash: hashResetToken(token) };
}

export function hashResetToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
