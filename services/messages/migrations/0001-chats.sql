-- The chats projection (rebuilt from the chats stream by `npm run rebuild -- messages`).
CREATE TABLE messages.chats (
  id                uuid PRIMARY KEY,
  type              text NOT NULL CHECK (type IN ('direct', 'group')),
  title             text,
  created_by        uuid NOT NULL,
  created_at        timestamptz NOT NULL,
  -- The chat's latest seq and when it last changed: the chat list sorts by it.
  last_seq          integer NOT NULL,
  last_activity_at  timestamptz NOT NULL,
  stream_seq        bigint NOT NULL
);

CREATE TABLE messages.chat_members (
  chat_id    uuid NOT NULL REFERENCES messages.chats (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL,
  role       text NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
  joined_seq integer NOT NULL,
  PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON messages.chat_members (user_id);

-- One direct chat per pair of users; user_a < user_b.
CREATE TABLE messages.direct_chats (
  user_a  uuid NOT NULL,
  user_b  uuid NOT NULL,
  chat_id uuid NOT NULL REFERENCES messages.chats (id) ON DELETE CASCADE,
  PRIMARY KEY (user_a, user_b),
  CHECK (user_a < user_b)
);

CREATE TABLE messages.messages (
  id             uuid PRIMARY KEY,
  chat_id        uuid NOT NULL REFERENCES messages.chats (id) ON DELETE CASCADE,
  seq            integer NOT NULL,
  sender_id      uuid NOT NULL,
  client_msg_id  text NOT NULL,
  body           text NOT NULL,
  reply_to       uuid,
  created_at     timestamptz NOT NULL,
  edited_at      timestamptz,
  deleted_at     timestamptz,
  stream_seq     bigint NOT NULL,
  UNIQUE (chat_id, seq)
);
-- History pages walk (chat_id, seq) backwards: the UNIQUE index above serves them.
CREATE UNIQUE INDEX messages_client_msg_id ON messages.messages (chat_id, sender_id, client_msg_id);

CREATE TABLE messages.projection_checkpoints (
  projector   text PRIMARY KEY,
  stream_seq  bigint NOT NULL
);
