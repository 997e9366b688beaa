import { Type } from '@sinclair/typebox';
import { AuthEnv, CommonEnv, GatewayVerifyEnv, loadEnv } from '@parley/config';

export const UsersEnv = {
  ...CommonEnv,
  ...AuthEnv,
  ...GatewayVerifyEnv,
  METRICS_PORT: Type.Number({ default: 9091 }),
  /** Refresh-token lifetime in seconds (30 days). */
  REFRESH_TOKEN_TTL: Type.Number({ default: 30 * 86400, minimum: 60 }),
  REDIS_USER_TTL: Type.Number({ default: 3600, minimum: 1 }),
  REDIS_SESSION_TTL: Type.Number({ default: 86400, minimum: 1 }),
  REDIS_CONTACTS_TTL: Type.Number({ default: 1800, minimum: 1 }),
  /** User search (GET /users?query=): requests per caller per window, per replica. */
  USER_SEARCH_RATE: Type.Number({ default: 20, minimum: 1 }),
  USER_SEARCH_WINDOW_SECONDS: Type.Number({ default: 10, minimum: 1 }),
  /**
   * Failed logins allowed on one account from one client address, and from one client address on
   * any accounts, within LOGIN_FAILURE_WINDOW_SECONDS; then that address waits for the window's end.
   */
  LOGIN_MAX_FAILURES_PER_ACCOUNT: Type.Number({ default: 5, minimum: 1 }),
  LOGIN_MAX_FAILURES_PER_ADDRESS: Type.Number({ default: 30, minimum: 1 }),
  LOGIN_FAILURE_WINDOW_SECONDS: Type.Number({ default: 900, minimum: 1 }),
  /**
   * Failed logins on one account from all addresses together, within the window, after which an
   * address that never signed in to it waits a doubling delay after each failure, at most
   * LOGIN_MAX_DELAY_SECONDS (issue 23, finding 2: slowed down, never locked out).
   */
  LOGIN_SLOWDOWN_AFTER_FAILURES: Type.Number({ default: 10, minimum: 1 }),
  LOGIN_MAX_DELAY_SECONDS: Type.Number({ default: 60, minimum: 1, maximum: 3600 }),
  /**
   * Password-reset requests allowed per typed address (known or not, alike) and per client address
   * within RESET_REQUEST_WINDOW_SECONDS; more answer 429 and mail nothing (issue 23, finding 4).
   */
  RESET_MAX_REQUESTS_PER_ACCOUNT: Type.Number({ default: 3, minimum: 1 }),
  RESET_MAX_REQUESTS_PER_ADDRESS: Type.Number({ default: 20, minimum: 1 }),
  RESET_REQUEST_WINDOW_SECONDS: Type.Number({ default: 3600, minimum: 1 }),
  /** Lifetime of an e-mail verification link, seconds (two days: mail can be slow to be read). */
  VERIFY_EMAIL_TTL: Type.Number({ default: 172_800, minimum: 60 }),
  /** Verification mails one account may ask for within RESET_REQUEST_WINDOW_SECONDS (one address gets one more: a registration's). */
  VERIFY_EMAIL_MAX_REQUESTS: Type.Number({ default: 3, minimum: 1 }),
  /**
   * Registrations from one client address within REGISTER_WINDOW_SECONDS, taken or not: bounds how
   * fast `email_taken` can be used to test addresses (issue 23, finding 5).
   */
  REGISTER_MAX_PER_ADDRESS: Type.Number({ default: 20, minimum: 1 }),
  REGISTER_WINDOW_SECONDS: Type.Number({ default: 3600, minimum: 1 }),
  /** Lifetime of a password-reset token in seconds (one hour: long enough to find the mail, short enough to limit a leaked inbox). */
  RESET_TOKEN_TTL: Type.Number({ default: 3600, minimum: 1 }),
  /** SMTP server as a URL (smtp[s]://user:pass@host:port); unset writes each mail as an .eml file into MAIL_DIR instead. */
  SMTP_URL: Type.Optional(Type.String()),
  MAIL_DIR: Type.String({ default: './data/mail' }),
  MAIL_FROM: Type.String({ default: 'Parley <no-reply@parley.local>' }),
  /** Where clients reach Parley; the reset mail's link starts with it. */
  PUBLIC_URL: Type.String({ default: 'http://localhost:8080' }),
};

export type UsersConfig = ReturnType<typeof loadUsersEnv>;

export function loadUsersEnv(source: Record<string, string | undefined> = process.env) {
  return loadEnv(UsersEnv, source);
}
