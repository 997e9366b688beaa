-- The users projection (rebuilt from the users stream by `npm run rebuild -- users`).
CREATE TABLE users.users (
  id              uuid PRIMARY KEY,
  username        text NOT NULL,
  username_lower  text NOT NULL UNIQUE,
  email           text NOT NULL,
  email_lower     text NOT NULL UNIQUE,
  display_name    text NOT NULL,
  bio             text NOT NULL DEFAULT '',
  avatar_url      text,
  password_hash   text NOT NULL,
  created_at      timestamptz NOT NULL,
  -- The stream sequence of the last event that changed this row (design.md: stored with the row).
  stream_seq      bigint NOT NULL
);
-- Prefix search on usernames and display names (GET /users?query=).
CREATE INDEX users_username_prefix ON users.users (username_lower text_pattern_ops);

-- Projector checkpoints: the last stream sequence each projector applied, written in the same
-- transaction as the rows, so a redelivered event is recognised and skipped.
CREATE TABLE users.projection_checkpoints (
  projector   text PRIMARY KEY,
  stream_seq  bigint NOT NULL
);

-- Sessions are service state, not a projection: they churn on every refresh, and a refresh
-- token's hash has no business in a long-lived replicated log. A rebuild leaves them alone.
-- No foreign key to users.users: a rebuild truncates that table while sessions stay valid.
CREATE TABLE users.sessions (
  id              uuid PRIMARY KEY,
  user_id         uuid NOT NULL,
  refresh_hash    bytea NOT NULL,
  -- The hash the last rotation replaced: presenting it again means the token was stolen.
  previous_hash   bytea,
  created_at      timestamptz NOT NULL DEFAULT now(),
  last_used_at    timestamptz NOT NULL DEFAULT now(),
  expires_at      timestamptz NOT NULL,
  revoked_at      timestamptz,
  revoked_reason  text
);
CREATE INDEX sessions_user ON users.sessions (user_id) WHERE revoked_at IS NULL;
