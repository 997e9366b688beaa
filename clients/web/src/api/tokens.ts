import type { Tokens } from './types.js';

/** Where the session's tokens live between page loads. The browser passes localStorage. */
export interface TokenStore {
  load(): Tokens | null;
  save(tokens: Tokens | null): void;
}

/** The localStorage key of the tokens (other tabs watch it: session.ts). */
export const TOKENS_KEY = 'parley.tokens';

/** The part of the Web Storage API used (kept structural so this module needs no DOM types). */
export interface KeyValueStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

/**
 * Refresh and access token in localStorage, so a reload keeps the session. The trade-off (any
 * script on the origin can read them) is accepted for a client served by the gateway itself with
 * no third-party scripts; docs/web-client.md says so.
 */
export function storageTokens(storage: KeyValueStorage): TokenStore {
  return {
    load() {
      try {
        const value = JSON.parse(storage.getItem(TOKENS_KEY) ?? 'null') as Tokens | null;
        return value && typeof value.refreshToken === 'string' ? value : null;
      } catch {
        return null;
      }
    },
    save(tokens) {
      if (tokens) storage.setItem(TOKENS_KEY, JSON.stringify(tokens));
      else storage.removeItem(TOKENS_KEY);
    },
  };
}

/** For tests and non-browser callers. */
export function memoryTokens(initial: Tokens | null = null): TokenStore {
  let value = initial;
  return {
    load: () => value,
    save: (tokens) => {
      value = tokens;
    },
  };
}
