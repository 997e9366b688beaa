-- Erasure on request (issue 6). An erased account leaves no row in users.users; this table keeps
-- only its id and when, so its messages in others' chats show a "deleted account" identity and a
-- rebuild (which replays the UserErased tombstone) reproduces exactly this.
CREATE TABLE users.erased_users (
  id          uuid PRIMARY KEY,
  erased_at   timestamptz NOT NULL,
  stream_seq  bigint NOT NULL
);
