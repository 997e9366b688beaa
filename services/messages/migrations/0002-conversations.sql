-- Polls, reactions, read positions and full-text search (issue 4).

ALTER TABLE messages.messages ADD COLUMN poll_id uuid;

-- Full-text search in English and Russian alike: both stemmers index every body, so
-- "messages" finds "message" and "сообщения" finds "сообщение". A deleted message's body is
-- emptied by the projection, which empties its search entry with it.
ALTER TABLE messages.messages ADD COLUMN search tsvector
  GENERATED ALWAYS AS (to_tsvector('english', body) || to_tsvector('russian', body)) STORED;
CREATE INDEX messages_search ON messages.messages USING GIN (search);

CREATE TABLE messages.reactions (
  message_id  uuid NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
  user_id     uuid NOT NULL,
  emoji       text NOT NULL,
  created_at  timestamptz NOT NULL,
  PRIMARY KEY (message_id, user_id, emoji)
);

CREATE TABLE messages.polls (
  id          uuid PRIMARY KEY,
  message_id  uuid NOT NULL REFERENCES messages.messages (id) ON DELETE CASCADE,
  chat_id     uuid NOT NULL,
  created_by  uuid NOT NULL,
  question    text NOT NULL,
  options     jsonb NOT NULL,
  multiple    boolean NOT NULL,
  closed      boolean NOT NULL DEFAULT false
);
CREATE INDEX polls_message ON messages.polls (message_id);

CREATE TABLE messages.poll_votes (
  poll_id    uuid NOT NULL REFERENCES messages.polls (id) ON DELETE CASCADE,
  user_id    uuid NOT NULL,
  option_id  text NOT NULL,
  PRIMARY KEY (poll_id, user_id, option_id)
);

-- Per member, the highest chat seq read (projection of the receipts stream).
CREATE TABLE messages.read_positions (
  chat_id     uuid NOT NULL,
  user_id     uuid NOT NULL,
  seq         integer NOT NULL,
  updated_at  timestamptz NOT NULL,
  stream_seq  bigint NOT NULL,
  PRIMARY KEY (chat_id, user_id)
);
