-- Rotations a session's refresh token went through: how far back a replayed token is looked for
-- (auth/sessions.ts, rotateRefresh). Sessions from before this version start at 0 (their last
-- replaced token is still known by previous_hash).
ALTER TABLE users.sessions ADD COLUMN rotations integer NOT NULL DEFAULT 0;
