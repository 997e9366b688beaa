-- GROUPS_PER_DAY (issue 23, finding 8) counted the groups the projection held, then appended: a
-- burst of creations sent at once all counted the same groups and all went through. Each group
-- creation now takes a slot here first, counted and inserted under a per-creator lock in one short
-- transaction (chats/create.ts). Not a projection (no event fills it): a rebuild leaves it alone.
-- Slots older than a day are deleted whenever a slot is taken: the table holds one day's groups.
CREATE TABLE messages.group_creation_slots (
  id        uuid PRIMARY KEY,
  user_id   uuid NOT NULL,
  taken_at  timestamptz NOT NULL
);
CREATE INDEX group_creation_slots_user ON messages.group_creation_slots (user_id, taken_at);
CREATE INDEX group_creation_slots_age ON messages.group_creation_slots (taken_at);

-- The groups created in the last day count from the start.
INSERT INTO messages.group_creation_slots (id, user_id, taken_at)
SELECT id, created_by, created_at FROM messages.chats
 WHERE type = 'group' AND created_by IS NOT NULL AND created_at > now() - interval '1 day';
