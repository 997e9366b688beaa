import type { AccessClaims, TokenVerifier } from '@parley/auth';
import type { RevocationList } from './revocations.js';

/** A valid, unexpired, unrevoked access token's claims, or null. Never throws on bad input. */
export type Authenticate = (token: string | null | undefined) => Promise<AccessClaims | null>;

export function authenticator(verifier: TokenVerifier, revocations: Pick<RevocationList, 'has'>): Authenticate {
  return async (token) => {
    const claims = await verifier.verify(token);
    return claims && !revocations.has(claims.sessionId) ? claims : null;
  };
}
