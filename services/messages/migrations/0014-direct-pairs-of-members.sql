-- A direct chat's pair (messages.direct_chats) answers "the chat of these two" to POST /chats. An
-- erased member leaves the chat; the pair row stayed, and a direct chat "with" the erased account
-- answered 200 with the old chat, the caller alone in it. MemberErased now removes the pair (and a
-- snapshot whose pair lost a member does not bring it back); this removes the rows left by
-- erasures before this version.
DELETE FROM messages.direct_chats d
 WHERE NOT EXISTS (SELECT 1 FROM messages.chat_members m WHERE m.chat_id = d.chat_id AND m.user_id = d.user_a)
    OR NOT EXISTS (SELECT 1 FROM messages.chat_members m WHERE m.chat_id = d.chat_id AND m.user_id = d.user_b);
