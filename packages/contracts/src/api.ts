import { Type, type Static } from '@sinclair/typebox';
import type { UserView } from './client.js';

/**
 * What travels between the gateway and the services for an HTTP API call (over NATS request/reply).
 * The gateway authenticates and parses; the owning service validates, authorizes and answers.
 */
export interface AuthContext {
  userId: string;
  sessionId: string;
}

export interface ApiRequest {
  method: string;
  /** Path without the query string, e.g. `/api/v1/chats/0193.../messages`. */
  path: string;
  query: Record<string, string>;
  /** Parsed JSON body, or null when the request had none. */
  body: unknown;
  auth: AuthContext | null;
  requestId: string;
  /** Client address as the gateway determined it (trusted-proxy rules applied). */
  ip: string;
  /** The User-Agent header, truncated; kept in the audit log. */
  userAgent: string;
}

export interface ApiResponse {
  status: number;
  body?: unknown;
  /** The matched route template (`/api/v1/chats/:id`), so the gateway's metrics never label by raw path. */
  route: string;
  headers?: Record<string, string>;
  /**
   * Sessions this request revoked (logout, password change). The gateway that carries the answer
   * applies them before replying, so the very next request with such a token fails; other gateways
   * learn from the revocations stream within milliseconds.
   */
  revokedSessions?: string[];
  /**
   * The public profile this request changed (PATCH /users/me, only when something really changed),
   * without the e-mail: the gateway that carries the answer tells the people who see the user at
   * once (the `profile` frame, services/gateway/src/ws/profiles.ts).
   */
  profileChanged?: UserView;
}

/** A request as the gateway signed it (packages/bus/src/assertion.ts), kept whole to be passed on as proof. */
export const SignedRequest = Type.Object(
  {
    subject: Type.String(),
    /** The Parley-Assertion header. */
    assertion: Type.String(),
    /** The request's payload bytes, base64. */
    payload: Type.String(),
  },
  { additionalProperties: false },
);
export type SignedRequest = Static<typeof SignedRequest>;

/** api.md's error envelope. */
export interface ErrorBody {
  error: { code: string; message: string; details?: unknown };
}
