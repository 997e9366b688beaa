-- Profiles: case-insensitive prefix search on display names (GET /users?query=).
CREATE INDEX users_display_name_prefix ON users.users (lower(display_name) text_pattern_ops);

-- Contacts (projection of ContactAdded / ContactRemoved).
CREATE TABLE users.contacts (
  user_id     uuid NOT NULL,
  contact_id  uuid NOT NULL,
  added_at    timestamptz NOT NULL,
  stream_seq  bigint NOT NULL,
  PRIMARY KEY (user_id, contact_id)
);

-- Security audit log (projection of the audit stream; kept AUDIT_LOG_RETENTION_DAYS).
CREATE TABLE users.audit_log (
  id           uuid PRIMARY KEY,
  user_id      uuid,
  action       text NOT NULL,
  ip           text NOT NULL,
  user_agent   text NOT NULL,
  details      jsonb NOT NULL DEFAULT '{}',
  occurred_at  timestamptz NOT NULL,
  stream_seq   bigint NOT NULL
);
CREATE INDEX audit_log_user ON users.audit_log (user_id, occurred_at DESC, id DESC);
CREATE INDEX audit_log_age ON users.audit_log (occurred_at);

-- Password-reset tokens (projection of the resets stream): only the SHA-256 of each token.
CREATE TABLE users.password_resets (
  id            uuid PRIMARY KEY,
  user_id       uuid NOT NULL,
  token_hash    bytea NOT NULL UNIQUE,
  requested_at  timestamptz NOT NULL,
  expires_at    timestamptz NOT NULL,
  used_at       timestamptz,
  stream_seq    bigint NOT NULL
);
CREATE INDEX password_resets_age ON users.password_resets (requested_at);

-- Failed-login counters for throttling, per account and per client address, in fixed windows.
-- Service state (not a projection), in Postgres rather than Redis so that throttling holds when
-- the cache is down and across replicas.
CREATE TABLE users.login_failures (
  key           text PRIMARY KEY,
  window_start  timestamptz NOT NULL,
  failures      integer NOT NULL
);
