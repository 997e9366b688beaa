import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { InvalidRequest } from '@parley/http';

/**
 * The list ships beside src/ and dist/ (services/users/data), so the same relative URL resolves
 * from the TypeScript sources (vitest) and from the compiled output (npm start).
 */
export const COMMON_PASSWORDS_FILE = fileURLToPath(new URL('../../data/common-passwords.txt', import.meta.url));

/** Mirrors the request schemas; repeated here so a caller that skips the schema is still covered. */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;

let common: Promise<ReadonlySet<string>> | undefined;

/**
 * Loaded on first use rather than at start: most requests never need it, and a missing file then
 * fails the password routes loudly instead of the whole service. A failed load is not cached, so a
 * later request retries.
 */
function commonPasswords(): Promise<ReadonlySet<string>> {
  common ??= readFile(COMMON_PASSWORDS_FILE, 'utf8').then(
    (text) => {
      const set = new Set<string>();
      for (const line of text.split(/\r?\n/)) {
        if (line === '' || line.startsWith('#')) continue;
        set.add(line.toLowerCase());
      }
      return set;
    },
    (error: unknown) => {
      common = undefined;
      throw error;
    },
  );
  return common;
}

/** True when `password` (case-insensitively) is one of the 10,000 most common passwords. */
export async function isCommonPassword(password: string): Promise<boolean> {
  return (await commonPasswords()).has(password.toLowerCase());
}

/**
 * Refuses a new password that breaks the policy, with 400 invalid_request. Run it before hashing:
 * argon2 is the expensive part, and a refused password should cost nothing. The message never
 * echoes the password.
 */
export async function assertPasswordAllowed(password: string): Promise<void> {
  // Length in UTF-16 code units, like the JSON schema's minLength/maxLength. Never truncated.
  if (password.length < PASSWORD_MIN_LENGTH || password.length > PASSWORD_MAX_LENGTH) {
    throw new InvalidRequest(`Passwords must be ${PASSWORD_MIN_LENGTH} to ${PASSWORD_MAX_LENGTH} characters long`);
  }
  if (await isCommonPassword(password)) {
    throw new InvalidRequest('This password is too common; choose one that is harder to guess');
  }
}
