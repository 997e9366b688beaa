-- Whether the owner proved they receive mail at the account's address (EmailVerified; issue 23,
-- finding 5). Accounts from before start unverified: nothing proved it for them either.
ALTER TABLE users.users ADD COLUMN email_verified boolean NOT NULL DEFAULT false;
