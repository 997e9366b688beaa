import type { Cache } from '@parley/cache';
import type { Logger } from '@parley/log';
import type { AuditRecorder } from '../audit/record.js';
import type { StorePasswordDeps } from '../auth/store-password.js';
import type { LoginThrottle } from '../auth/throttle.js';
import type { Mailer } from '../mail/mailer.js';

/** What the password-reset flow needs. */
export interface ResetDeps extends StorePasswordDeps {
  cache: Cache;
  log: Logger;
  audit: AuditRecorder;
  throttle: LoginThrottle;
  mailer: Mailer;
  /** RESET_TOKEN_TTL, seconds. */
  tokenTtlSeconds: number;
  /** PUBLIC_URL, the start of the link in the mail. */
  publicUrl: string;
}
