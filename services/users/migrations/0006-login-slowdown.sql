-- When a counter last counted a failure: the account-wide slowdown of logins waits from there
-- (issue 23, finding 2). Counters keyed by the old scheme (account id, address in clear) are
-- dropped: they would never be read again, and they named addresses.
ALTER TABLE users.login_failures ADD COLUMN last_failure timestamptz;
DELETE FROM users.login_failures;
