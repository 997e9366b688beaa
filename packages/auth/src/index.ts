import { SignJWT, jwtVerify, errors } from 'jose';

/**
 * Access tokens: short-lived HS256 JWTs that the gateway verifies locally, without a round trip
 * to the users service, on every request and socket. Refresh tokens are not JWTs: they are random
 * secrets that only the users service can check (it stores their hashes).
 */
export interface AccessClaims {
  userId: string;
  sessionId: string;
  /** The account's e-mail address was verified when the token was issued (claim `ev`). */
  emailVerified?: boolean;
  /** When the token expires (ms since the epoch, claim `exp`); set by TokenVerifier. */
  expiresAt?: number;
}

const ISSUER = 'parley';
const AUDIENCE = 'parley-api';

export class TokenSigner {
  private readonly key: Uint8Array;

  constructor(secret: string, private readonly ttlSeconds: number) {
    this.key = new TextEncoder().encode(secret);
  }

  async sign(claims: AccessClaims, now = new Date()): Promise<string> {
    const iat = Math.floor(now.getTime() / 1000);
    return new SignJWT({ sid: claims.sessionId, ...(claims.emailVerified ? { ev: true } : {}) })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.userId)
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + this.ttlSeconds)
      .sign(this.key);
  }
}

export class TokenVerifier {
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.key = new TextEncoder().encode(secret);
  }

  /** The claims of a valid, unexpired token, or null for anything else (never throws on bad input). */
  async verify(token: string | undefined | null): Promise<AccessClaims | null> {
    if (!token || token.length > 4096) return null;
    try {
      const { payload } = await jwtVerify(token, this.key, { issuer: ISSUER, audience: AUDIENCE, algorithms: ['HS256'] });
      if (typeof payload.sub !== 'string' || typeof payload.sid !== 'string') return null;
      return { userId: payload.sub, sessionId: payload.sid, emailVerified: payload.ev === true, ...(typeof payload.exp === 'number' ? { expiresAt: payload.exp * 1000 } : {}) };
    } catch (error) {
      if (error instanceof errors.JOSEError) return null;
      throw error;
    }
  }
}
