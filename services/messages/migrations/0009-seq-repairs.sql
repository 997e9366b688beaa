-- Message events the store accepted with a chat seq another event of the chat already had (NATS
-- 2.9.10 in a cluster: docs/reliability.md). The chats projection queues each one here in the
-- transaction that finds it, and the seq-repair reactor (src/reactors/seq-repair.ts) appends it to
-- the chat again under a new seq, its message id and content kept, then deletes the row: an
-- acknowledged message cannot stay lost to a crash after the commit. One row per lost copy, keyed
-- by where the chats stream holds it (its content is read from there, not kept twice): the repaired
-- copy can lose its seq again while the reactor still holds the first row, and must get a row of its
-- own. queued_at is the time of the lost event.
CREATE TABLE messages.seq_repairs (
  stream_seq  bigint PRIMARY KEY,
  message_id  uuid NOT NULL,
  chat_id     uuid NOT NULL,
  seq         integer NOT NULL,
  queued_at   timestamptz NOT NULL
);
