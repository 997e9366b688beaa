-- Accounts whose erasure has begun (ids only, kept): no session may start for them any more. A login
-- that checked the password before the erasure must not leave a working session after it (issue 23,
-- finding 6). Written by the erasure under an advisory lock that session starts share.
CREATE TABLE users.erasing (
  user_id    uuid PRIMARY KEY,
  started_at timestamptz NOT NULL DEFAULT now()
);
