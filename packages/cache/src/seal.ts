import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * Cache entries are sealed (issue 23, finding 9): Redis is shared infrastructure, often without
 * TLS, and anyone who reaches it could read cached profiles (with e-mail addresses) or plant a
 * profile or chat list the API would then serve. So every value is encrypted and authenticated
 * with AES-256-GCM under CACHE_KEY, which only the services hold:
 *
 * - the key's full name (`<prefix>:<key>`) is the associated data: a sealed value copied under
 *   another key (another user's profile) does not open;
 * - the plaintext carries its own expiry: a value replayed with a longer TTL than it was written
 *   with is stale past that expiry and does not open either.
 *
 * A value that does not open is a miss: the caller reads Postgres, as with no cache at all.
 * Format: `s1.` + base64url(12-byte IV ‖ 16-byte tag ‖ ciphertext of JSON `[expiresAtMs, value]`).
 */
const VERSION = 's1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** A 32-byte key from its base64url form (CACHE_KEY, as `npm run secrets` writes it). */
export function cacheKeyFrom(encoded: string): Buffer {
  const key = Buffer.from(encoded, 'base64url');
  if (key.length !== 32) throw new Error('CACHE_KEY must be 32 bytes, base64url (43 characters): npm run secrets makes one');
  return key;
}

export function seal(secret: Buffer, fullKey: string, value: unknown, ttlSeconds: number, now = Date.now()): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', secret, iv);
  cipher.setAAD(Buffer.from(fullKey));
  const body = Buffer.concat([cipher.update(JSON.stringify([now + ttlSeconds * 1000, value])), cipher.final()]);
  return VERSION + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** The value, or undefined when `raw` was not sealed under this key and name, or has expired. */
export function open<T>(secret: Buffer, fullKey: string, raw: string, now = Date.now()): T | undefined {
  if (!raw.startsWith(VERSION)) return undefined;
  const bytes = Buffer.from(raw.slice(VERSION.length), 'base64url');
  if (bytes.length < IV_BYTES + TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', secret, bytes.subarray(0, IV_BYTES));
    decipher.setAAD(Buffer.from(fullKey));
    decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    const plain = Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]);
    const [expiresAt, value] = JSON.parse(plain.toString()) as [number, T];
    return typeof expiresAt === 'number' && expiresAt > now ? value : undefined;
  } catch {
    return undefined;
  }
}
