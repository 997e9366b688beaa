-- Queues of side effects, written by a projection in the transaction that makes them necessary and
-- drained by a reactor (src/reactors/), so that a crash after the commit cannot lose them.
-- released_attachments: the chats projection's (attachments a deleted, expired or erased message
-- let go of), drained into AttachmentDeleted events. file_deletions: the attachments projection's
-- (files of deleted attachment records), drained by deleting the files. queued_at is the time of
-- the event that queued the row (projections write nothing that depends on when they run).
CREATE TABLE messages.released_attachments (
  attachment_id uuid PRIMARY KEY,
  reason        text NOT NULL,
  queued_at     timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE messages.file_deletions (
  attachment_id uuid PRIMARY KEY,
  queued_at     timestamptz NOT NULL DEFAULT now()
);
