-- When the account's password last changed (PasswordChanged's time): a reset token requested
-- before it is dead, so a reset or a change ends every other outstanding token (issue 23, finding 4).
ALTER TABLE users.users ADD COLUMN password_changed_at timestamptz;
