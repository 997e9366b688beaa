import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { assertPasswordAllowed, COMMON_PASSWORDS_FILE, isCommonPassword } from './password-policy.js';

describe('password policy', () => {
  it('knows the 10,000 listed passwords, case-insensitively, and not the comment lines', async () => {
    const lines = (await readFile(COMMON_PASSWORDS_FILE, 'utf8')).split('\n').filter((l) => l !== '' && !l.startsWith('#'));
    expect(lines).toHaveLength(10_000);
    for (const password of ['123456', 'password', 'PASSWORD', 'Dragon', 'trustno1', lines[9_999] ?? '']) {
      expect(await isCommonPassword(password), password).toBe(true);
    }
    expect(await isCommonPassword('# The 10,000 most common passwords, most common first, one per line; registration and password')).toBe(false);
    expect(await isCommonPassword('correct horse battery staple, uncommonly')).toBe(false);
  });

  it('refuses common, short and overlong passwords with invalid_request, never echoing them', async () => {
    await expect(assertPasswordAllowed('Password1')).rejects.toMatchObject({ status: 400, code: 'invalid_request', message: expect.stringMatching(/too common/) });
    await expect(assertPasswordAllowed('short')).rejects.toMatchObject({ code: 'invalid_request' });
    await expect(assertPasswordAllowed('x'.repeat(257))).rejects.toMatchObject({ code: 'invalid_request' });
    await expect(assertPasswordAllowed('Password1')).rejects.not.toMatchObject({ message: expect.stringContaining('Password1') });
    // Exactly at the bounds, and nothing is cut off: a long password is checked as a whole.
    await expect(assertPasswordAllowed('x'.repeat(256))).resolves.toBeUndefined();
    await expect(assertPasswordAllowed(`password${'!'.repeat(100)}`)).resolves.toBeUndefined();
  });
});
