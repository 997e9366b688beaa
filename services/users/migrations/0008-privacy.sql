-- Privacy settings and the block list (issue 23, finding 8), projected from PrivacyChanged,
-- UserBlocked and UserUnblocked. The defaults keep what every account had before.
ALTER TABLE users.users
  ADD COLUMN privacy_group_add text NOT NULL DEFAULT 'everyone',
  ADD COLUMN privacy_presence text NOT NULL DEFAULT 'everyone';
CREATE TABLE users.blocks (
  user_id     uuid NOT NULL,
  blocked_id  uuid NOT NULL,
  blocked_at  timestamptz NOT NULL,
  stream_seq  bigint NOT NULL,
  PRIMARY KEY (user_id, blocked_id)
);
CREATE INDEX blocks_blocked ON users.blocks (blocked_id);
