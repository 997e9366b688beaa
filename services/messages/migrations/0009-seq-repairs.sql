-- Message events the store accepted with a chat seq another event of the chat already had (NATS
-- 2.9.10 in a cluster: docs/reliability.md). The chats projection queues each one here in the
-- transaction that finds it, and the seq-repair reactor (src/reactors/seq-repair.ts) appends it to
-- the chat again under a new seq, its message id and content kept, then deletes the row: an
-- acknowledged message cannot stay lost to a crash after the commit. stream_seq locates the lost
-- copy in the chats stream (its content is read from there, not kept twice); queued_at is the time
-- of the lost event.
CREATE TABLE messages.seq_repairs (
  message_id  uuid PRIMARY KEY,
  chat_id     uuid NOT NULL,
  seq         integer NOT NULL,
  stream_seq  bigint NOT NULL,
  queued_at   timestamptz NOT NULL
);
