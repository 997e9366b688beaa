import { ApiError } from '../api/index.js';
import { translate, type Key, type Lang } from '../i18n.js';

/**
 * What a failure says to the person, in their language (issue 22: the Russian interface showed the
 * server's English, e.g. "Invalid body: /password Expected string length greater or equal to 8",
 * and "Failed to fetch"). The contract's error codes map to translated text; a code without an
 * entry keeps the server's message.
 */
const BY_CODE: Record<string, Key> = {
  invalid_credentials: 'errInvalidCredentials',
  username_taken: 'errUsernameTaken',
  email_taken: 'errEmailTaken',
  email_unverified: 'errEmailUnverified',
  rate_limited: 'errRateLimited',
  payload_too_large: 'errTooLarge',
  unavailable: 'errUnavailable',
  forbidden: 'errForbidden',
  not_found: 'errNotFound',
  conflict: 'errConflict',
  unauthorized: 'errUnauthorized',
};

export function errorText(lang: Lang, error: unknown): string {
  if (error instanceof ApiError) {
    // Bad input: the field the server named, when it is one a person typed.
    if (error.code === 'invalid_request') {
      if (/password/i.test(error.message)) return translate(lang, 'errPasswordRule');
      if (/reset token|verification link/i.test(error.message)) return translate(lang, 'errLinkInvalid');
      return translate(lang, 'errInvalidRequest');
    }
    const key = BY_CODE[error.code];
    if (key) return translate(lang, key);
    return error.message;
  }
  // fetch's TypeError: no answer at all (offline, the server down).
  if (error instanceof TypeError) return translate(lang, 'errNetwork');
  return error instanceof Error ? error.message : String(error);
}
