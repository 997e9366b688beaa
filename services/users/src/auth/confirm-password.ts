import { RateLimited, Unauthorized } from '@parley/http';
import type { Pool } from '@parley/pg';
import { findUserById, type UserRow } from '../users/queries.js';
import { verifyPassword } from './passwords.js';
import type { LoginThrottle } from './throttle.js';

/**
 * Re-authentication for a sensitive change of a signed-in account (password change, erasure): a
 * stolen access token must not become a way to guess the password, so wrong passwords count as
 * failed logins and are throttled like them, on counters of their own (REAUTH_PREFIX): they shared
 * the logins' and were keyed by user id, so anyone who typed a user's public id as a login name a
 * few times locked that user out of changing their password or deleting their account. Returns the
 * account, or throws 429 / 401.
 */
export async function confirmPassword(
  deps: { pool: Pool; reauthThrottle: LoginThrottle },
  userId: string,
  ip: string,
  password: string,
  wrongMessage: string,
): Promise<UserRow> {
  const wait = await deps.reauthThrottle.reserve(userId, ip);
  if (wait !== null) throw new RateLimited(wait, 'Too many failed attempts; try again later');
  const user = await findUserById(deps.pool, userId);
  if (!user) throw new Unauthorized();
  if (!(await verifyPassword(user.password_hash, password))) throw new Unauthorized(wrongMessage, 'invalid_credentials');
  // A right password, as for a login: this address's counter is cleared, the others' attempt given back.
  await deps.reauthThrottle.recordSuccess(userId, ip);
  return user;
}
