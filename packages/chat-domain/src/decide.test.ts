import { describe, it } from 'vitest';
import type { Decided } from './decide.js';
import { givenChat } from './specification.js';

const O = 'owner-1';
const A = 'admin-1';
const M = 'member-1';
const N = 'member-2';
const X = 'outsider';

const group: Decided = {
  type: 'ChatCreated',
  data: { type: 'group', title: 'g', createdBy: O, members: [{ userId: O, role: 'owner' }, { userId: M, role: 'member' }, { userId: N, role: 'member' }] },
};
const direct: Decided = { type: 'ChatCreated', data: { type: 'direct', title: null, createdBy: O, members: [{ userId: O, role: 'owner' }, { userId: M, role: 'member' }] } };
const adminJoins: Decided = { type: 'MemberAdded', data: { userId: A, role: 'admin', addedBy: O } };
const removed = (userId: string, by = O): Decided => ({ type: 'MemberRemoved', data: { userId, removedBy: by, reason: by === userId ? 'left' : 'removed', newOwnerId: null } });
const sent = (messageId: string, senderId: string): Decided => ({ type: 'MessageSent', data: { messageId, senderId, clientMsgId: `c-${messageId}`, body: 'hi', replyTo: null, attachmentIds: [] } });
const poll = (pollId: string, by: string, multiple = false): Decided => ({
  type: 'PollPosted',
  data: { messageId: `msg-${pollId}`, senderId: by, clientMsgId: `c-${pollId}`, pollId, question: 'q?', options: [{ id: 'a', text: 'A' }, { id: 'b', text: 'B' }], multiple },
});
const send = (actorId: string, replyTo: string | null = null) => ({ type: 'SendMessage' as const, actorId, data: { messageId: 'm-new', clientMsgId: 'c-new', body: 'hello', replyTo, attachmentIds: [] } });

describe('chat decider: sending', () => {
  it('a member sends', () => givenChat(group).when(send(M)).then({ type: 'MessageSent', data: { ...send(M).data, senderId: M } }));
  it('an outsider gets "no such chat", like for a chat that does not exist', () => {
    givenChat(group).when(send(X)).thenRefused('not_found', 'No such chat');
    givenChat().when(send(M)).thenRefused('not_found', 'No such chat');
  });
  it('race: a member removed before the send is appended is refused when deciding again', () => givenChat(group, removed(M)).when(send(M)).thenRefused('not_found'));
  it('race: a member who left, or whose account was erased, is refused', () => {
    givenChat(group, removed(M, M)).when(send(M)).thenRefused('not_found');
    givenChat(group, { type: 'MemberErased', data: { userId: M, purged: false, newOwnerId: null } }).when(send(M)).thenRefused('not_found');
  });
  it('a member added again may send again', () => givenChat(group, removed(M), { type: 'MemberAdded', data: { userId: M, role: 'member', addedBy: O } }).when(send(M)).then({ type: 'MessageSent', data: { ...send(M).data, senderId: M } }));
  it('replies only to a visible message of the same chat', () => {
    givenChat(group, sent('m1', N)).when(send(M, 'm1')).then({ type: 'MessageSent', data: { ...send(M, 'm1').data, senderId: M } });
    givenChat(group).when(send(M, 'elsewhere')).thenRefused('invalid_request');
    givenChat(group, sent('m1', N), { type: 'MessageDeleted', data: { messageId: 'm1', deletedBy: N } }).when(send(M, 'm1')).thenRefused('invalid_request');
  });
  it('posts a poll as a member only', () => {
    const data = { messageId: 'p', clientMsgId: 'cp', pollId: 'p1', question: 'q', options: [{ id: 'a', text: 'A' }], multiple: false };
    givenChat(group).when({ type: 'PostPoll', actorId: M, data }).then({ type: 'PollPosted', data: { ...data, senderId: M } });
    givenChat(group, removed(M)).when({ type: 'PostPoll', actorId: M, data }).thenRefused('not_found');
  });
});

describe('chat decider: edits, deletes, reactions', () => {
  it('the author edits; nobody else; not a poll; not a deleted or expired message', () => {
    givenChat(group, sent('m1', M)).when({ type: 'EditMessage', actorId: M, messageId: 'm1', body: 'b2' }).then({ type: 'MessageEdited', data: { messageId: 'm1', body: 'b2', editedBy: M } });
    givenChat(group, sent('m1', M)).when({ type: 'EditMessage', actorId: O, messageId: 'm1', body: 'b2' }).thenRefused('forbidden');
    givenChat(group, poll('p1', M)).when({ type: 'EditMessage', actorId: M, messageId: 'msg-p1', body: 'b2' }).thenRefused('invalid_request');
    givenChat(group, sent('m1', M), { type: 'MessageDeleted', data: { messageId: 'm1', deletedBy: M } }).when({ type: 'EditMessage', actorId: M, messageId: 'm1', body: 'b2' }).thenRefused('not_found');
    givenChat(group, sent('m1', M), { type: 'MessagesExpired', data: { upToSeq: 2, cutoff: 'c' } }).when({ type: 'EditMessage', actorId: M, messageId: 'm1', body: 'b2' }).thenRefused('not_found');
  });
  it('race: an author removed before the edit is refused', () => givenChat(group, sent('m1', M), removed(M)).when({ type: 'EditMessage', actorId: M, messageId: 'm1', body: 'x' }).thenRefused('not_found', 'No such message'));
  it('the author or a group admin deletes, keeping what the tombstone needs', () => {
    const original = { clientMsgId: 'c-m1', createdAt: '2026-01-01T00:00:00.000Z' };
    givenChat(group, sent('m1', M)).when({ type: 'DeleteMessage', actorId: M, messageId: 'm1', original }).then({ type: 'MessageDeleted', data: { messageId: 'm1', deletedBy: M, original: { seq: 2, senderId: M, ...original } } });
    givenChat(group, adminJoins, sent('m1', M)).when({ type: 'DeleteMessage', actorId: A, messageId: 'm1', original }).then({ type: 'MessageDeleted', data: { messageId: 'm1', deletedBy: A, original: { seq: 3, senderId: M, ...original } } });
    givenChat(group, sent('m1', M)).when({ type: 'DeleteMessage', actorId: N, messageId: 'm1', original }).thenRefused('forbidden');
    // In a direct chat the other person is "owner" by creation, but has no admin rights over messages.
    givenChat(direct, sent('m1', M)).when({ type: 'DeleteMessage', actorId: O, messageId: 'm1', original }).thenRefused('forbidden');
  });
  it('reacts on a visible message; removes only an existing reaction', () => {
    givenChat(group, sent('m1', N)).when({ type: 'React', actorId: M, messageId: 'm1', emoji: '👍', reacted: false }).then({ type: 'ReactionAdded', data: { messageId: 'm1', userId: M, emoji: '👍' } });
    givenChat(group).when({ type: 'React', actorId: M, messageId: 'm1', emoji: '👍', reacted: false }).thenRefused('not_found');
    givenChat(group, sent('m1', N)).when({ type: 'React', actorId: M, messageId: 'm1', emoji: '👍', reacted: true }).thenNothingHappened();
    givenChat(group, sent('m1', N)).when({ type: 'Unreact', actorId: M, messageId: 'm1', emoji: '👍', reacted: true }).then({ type: 'ReactionRemoved', data: { messageId: 'm1', userId: M, emoji: '👍' } });
    givenChat(group, sent('m1', N)).when({ type: 'Unreact', actorId: M, messageId: 'm1', emoji: '👍', reacted: false }).thenRefused('not_found', 'No such reaction');
    givenChat(group, sent('m1', N), removed(M)).when({ type: 'React', actorId: M, messageId: 'm1', emoji: '👍', reacted: false }).thenRefused('not_found');
  });
  it('race: the same reaction added (or removed) by another request after the basis decides this one too', () => {
    const added = { type: 'ReactionAdded', data: { messageId: 'm1', userId: M, emoji: '👍' } } as const;
    const removedAgain = { type: 'ReactionRemoved', data: { messageId: 'm1', userId: M, emoji: '👍' } } as const;
    // Both requests read "not reacted" from the projection; the second decides again on the first's event.
    givenChat(group, sent('m1', N), added).when({ type: 'React', actorId: M, messageId: 'm1', emoji: '👍', reacted: false }).thenNothingHappened();
    givenChat(group, sent('m1', N), added, removedAgain).when({ type: 'Unreact', actorId: M, messageId: 'm1', emoji: '👍', reacted: true }).thenRefused('not_found', 'No such reaction');
    // Another emoji, or another user's reaction, is not this one.
    givenChat(group, sent('m1', N), { type: 'ReactionAdded', data: { messageId: 'm1', userId: N, emoji: '👍' } }).when({ type: 'React', actorId: M, messageId: 'm1', emoji: '👍', reacted: false }).then(added);
  });
});

describe('chat decider: polls', () => {
  it('votes with known options, one unless multiple', () => {
    givenChat(group, poll('p1', N)).when({ type: 'Vote', actorId: M, pollId: 'p1', optionIds: ['a'] }).then({ type: 'PollVoted', data: { pollId: 'p1', messageId: 'msg-p1', userId: M, optionIds: ['a'] } });
    givenChat(group, poll('p1', N)).when({ type: 'Vote', actorId: M, pollId: 'p1', optionIds: ['a', 'b'] }).thenRefused('invalid_request', 'This poll takes a single choice');
    givenChat(group, poll('p1', N, true)).when({ type: 'Vote', actorId: M, pollId: 'p1', optionIds: ['a', 'b'] }).then({ type: 'PollVoted', data: { pollId: 'p1', messageId: 'msg-p1', userId: M, optionIds: ['a', 'b'] } });
    givenChat(group, poll('p1', N)).when({ type: 'Vote', actorId: M, pollId: 'p1', optionIds: ['z'] }).thenRefused('invalid_request', 'Unknown option');
  });
  it('race: a vote decided before the poll closed is refused when decided again', () =>
    givenChat(group, poll('p1', N), { type: 'PollClosed', data: { pollId: 'p1', messageId: 'msg-p1', closedBy: N } }).when({ type: 'Vote', actorId: M, pollId: 'p1', optionIds: ['a'] }).thenRefused('invalid_request', 'The poll is closed'));
  it('only the creator closes a poll, once', () => {
    givenChat(group, poll('p1', N)).when({ type: 'ClosePoll', actorId: N, pollId: 'p1' }).then({ type: 'PollClosed', data: { pollId: 'p1', messageId: 'msg-p1', closedBy: N } });
    givenChat(group, poll('p1', N)).when({ type: 'ClosePoll', actorId: M, pollId: 'p1' }).thenRefused('forbidden');
    givenChat(group, poll('p1', N), { type: 'PollClosed', data: { pollId: 'p1', messageId: 'msg-p1', closedBy: N } }).when({ type: 'ClosePoll', actorId: N, pollId: 'p1' }).thenNothingHappened();
    givenChat(group, poll('p1', N), { type: 'MessageDeleted', data: { messageId: 'msg-p1', deletedBy: N } }).when({ type: 'ClosePoll', actorId: N, pollId: 'p1' }).thenRefused('not_found');
  });
});

describe('chat decider: members', () => {
  it('owners and admins of a group add members; not twice; not unknown users; not in direct chats', () => {
    givenChat(group).when({ type: 'AddMember', actorId: O, userId: X, userExists: true }).then({ type: 'MemberAdded', data: { userId: X, role: 'member', addedBy: O } });
    givenChat(group).when({ type: 'AddMember', actorId: M, userId: X, userExists: true }).thenRefused('forbidden');
    givenChat(group).when({ type: 'AddMember', actorId: O, userId: N, userExists: true }).thenRefused('conflict');
    givenChat(group).when({ type: 'AddMember', actorId: O, userId: X, userExists: false }).thenRefused('not_found', 'No such user');
    givenChat(direct).when({ type: 'AddMember', actorId: O, userId: X, userExists: true }).thenRefused('forbidden');
  });
  it('race: an admin demoted by removal can no longer add or remove', () => {
    givenChat(group, adminJoins, removed(A)).when({ type: 'AddMember', actorId: A, userId: X, userExists: true }).thenRefused('not_found');
    givenChat(group, adminJoins, removed(A)).when({ type: 'RemoveMember', actorId: A, userId: M }).thenRefused('not_found');
  });
  it('admins remove members, only the owner removes admins, nobody removes the owner', () => {
    givenChat(group, adminJoins).when({ type: 'RemoveMember', actorId: A, userId: M }).then(removed(M, A));
    givenChat(group, adminJoins, { type: 'MemberAdded', data: { userId: 'admin-2', role: 'admin', addedBy: O } }).when({ type: 'RemoveMember', actorId: A, userId: 'admin-2' }).thenRefused('forbidden');
    givenChat(group, adminJoins).when({ type: 'RemoveMember', actorId: O, userId: A }).then(removed(A, O));
    givenChat(group, adminJoins).when({ type: 'RemoveMember', actorId: A, userId: O }).thenRefused('forbidden');
    givenChat(group).when({ type: 'RemoveMember', actorId: M, userId: N }).thenRefused('forbidden');
    givenChat(group).when({ type: 'RemoveMember', actorId: O, userId: X }).thenRefused('not_found', 'No such member');
    givenChat(direct).when({ type: 'RemoveMember', actorId: O, userId: M }).thenRefused('invalid_request');
  });
  it('an owner who leaves hands the group to the longest-standing admin, else member', () => {
    givenChat(group, adminJoins).when({ type: 'RemoveMember', actorId: O, userId: O }).then({ type: 'MemberRemoved', data: { userId: O, removedBy: O, reason: 'left', newOwnerId: A } });
    givenChat(group).when({ type: 'RemoveMember', actorId: O, userId: O }).then({ type: 'MemberRemoved', data: { userId: O, removedBy: O, reason: 'left', newOwnerId: M } });
  });
  it('race: an owner leaving names no successor who was removed concurrently', () =>
    givenChat(group, adminJoins, removed(A)).when({ type: 'RemoveMember', actorId: O, userId: O }).then({ type: 'MemberRemoved', data: { userId: O, removedBy: O, reason: 'left', newOwnerId: M } }));
  it('the new owner takes the owner role', () =>
    givenChat(group, { type: 'MemberRemoved', data: { userId: O, removedBy: O, reason: 'left', newOwnerId: M } }).when({ type: 'RemoveMember', actorId: M, userId: N }).then(removed(N, M)));
  it('owners and admins rename groups', () => {
    givenChat(group).when({ type: 'Rename', actorId: O, title: 't2' }).then({ type: 'ChatRenamed', data: { title: 't2', renamedBy: O } });
    givenChat(group).when({ type: 'Rename', actorId: M, title: 't2' }).thenRefused('forbidden');
    givenChat(direct).when({ type: 'Rename', actorId: O, title: 't2' }).thenRefused('forbidden');
  });
});

describe('chat decider: retention and erasure', () => {
  it('expires up to a seq once, never past the head', () => {
    givenChat(group, sent('m1', M)).when({ type: 'ExpireMessages', upToSeq: 2, cutoff: 'c' }).then({ type: 'MessagesExpired', data: { upToSeq: 2, cutoff: 'c' } });
    givenChat(group, sent('m1', M), { type: 'MessagesExpired', data: { upToSeq: 2, cutoff: 'c' } }).when({ type: 'ExpireMessages', upToSeq: 2, cutoff: 'c' }).thenNothingHappened();
    givenChat(group).when({ type: 'ExpireMessages', upToSeq: 5, cutoff: 'c' }).thenNothingHappened();
  });
  it('erases a member once, handing an owned group on', () => {
    givenChat(group).when({ type: 'EraseMember', userId: M, purged: true }).then({ type: 'MemberErased', data: { userId: M, purged: true, newOwnerId: null } });
    givenChat(group, adminJoins).when({ type: 'EraseMember', userId: O, purged: false }).then({ type: 'MemberErased', data: { userId: O, purged: false, newOwnerId: A } });
    givenChat(group, removed(M)).when({ type: 'EraseMember', userId: M, purged: false }).thenNothingHappened();
    // Left before, but wrote while in: the purge still needs its event (the projection deletes their messages).
    givenChat(group, sent('m1', M), removed(M)).when({ type: 'EraseMember', userId: M, purged: true }).then({ type: 'MemberErased', data: { userId: M, purged: true, newOwnerId: null } });
    // The check after an add: only a member, and never into a chat that does not exist.
    givenChat(group, removed(M)).when({ type: 'EraseMember', userId: M, purged: true, onlyIfMember: true }).thenNothingHappened();
    givenChat(group).when({ type: 'EraseMember', userId: M, purged: true, onlyIfMember: true }).then({ type: 'MemberErased', data: { userId: M, purged: true, newOwnerId: null } });
    givenChat().when({ type: 'EraseMember', userId: M, purged: true }).thenNothingHappened();
  });
  it('race: what an erasure with a purge took is gone for every later command (the projection deletes it; the decider took a reaction, vote, reply or deletion aimed at it)', () => {
    const purged: Decided = { type: 'MemberErased', data: { userId: M, purged: true, newOwnerId: null } };
    givenChat(group, sent('m1', M), poll('p1', M), purged).when({ type: 'React', actorId: O, messageId: 'm1', emoji: '👍', reacted: false }).thenRefused('not_found');
    givenChat(group, sent('m1', M), poll('p1', M), purged).when({ type: 'Vote', actorId: O, pollId: 'p1', optionIds: ['a'] }).thenRefused('not_found');
    givenChat(group, sent('m1', M), purged).when(send(O, 'm1')).thenRefused('invalid_request');
    givenChat(group, sent('m1', M), purged).when({ type: 'DeleteMessage', actorId: O, messageId: 'm1', original: { clientMsgId: 'c-m1', createdAt: 'x' } }).thenRefused('not_found');
    // Erased without a purge, their messages stay.
    givenChat(group, sent('m1', M), { type: 'MemberErased', data: { userId: M, purged: false, newOwnerId: null } }).when({ type: 'React', actorId: O, messageId: 'm1', emoji: '👍', reacted: false }).then({ type: 'ReactionAdded', data: { messageId: 'm1', userId: O, emoji: '👍' } });
  });
});

describe('chat decider: creation', () => {
  const create = (actorId: string, data: Extract<Decided, { type: 'ChatCreated' }>['data']) => ({ type: 'CreateChat' as const, actorId, data });
  const pair = { type: 'direct' as const, title: null, createdBy: O, members: [{ userId: O, role: 'member' as const }, { userId: M, role: 'member' as const }] };
  it('creates a group owned by its creator, and a direct chat of two members', () => {
    givenChat().when(create(O, group.data as never)).then(group);
    givenChat().when(create(O, pair)).then({ type: 'ChatCreated', data: pair });
  });
  it('race: a chat created meanwhile (another replica finishing the claim) is not created again', () => {
    givenChat({ type: 'ChatCreated', data: pair }).when(create(O, pair)).thenNothingHappened();
    givenChat({ type: 'ChatCreated', data: pair }).when(create(M, { ...pair, createdBy: M })).thenNothingHappened();
  });
  it('refuses a chat its creator is not in, a member listed twice, a direct chat of one, a group owned by another', () => {
    givenChat().when(create(X, pair)).thenRefused('invalid_request', 'The creator must be a member of the chat');
    givenChat().when(create(O, { ...pair, members: [...pair.members, { userId: M, role: 'member' }] })).thenRefused('invalid_request', 'A member is listed twice');
    givenChat().when(create(O, { ...pair, members: [{ userId: O, role: 'member' }] })).thenRefused('invalid_request', 'A direct chat needs another user');
    const stolen = { type: 'group' as const, title: 'g', createdBy: O, members: [{ userId: O, role: 'member' as const }, { userId: M, role: 'owner' as const }] };
    givenChat().when(create(O, stolen)).thenRefused('invalid_request', 'The creator owns a group, alone');
  });
});

describe('chat decider: the erasure ledger after a restore', () => {
  const original = { clientMsgId: 'c-m1', createdAt: '2026-01-01T00:00:00.000Z' };
  it('deletes a message the ledger names in its author\'s name, even when the author has left', () => {
    const tombstone: Decided = { type: 'MessageDeleted', data: { messageId: 'm1', deletedBy: M, original: { seq: 2, senderId: M, ...original } } };
    givenChat(group, sent('m1', M)).when({ type: 'RedeleteMessage', messageId: 'm1', original }).then(tombstone);
    givenChat(group, sent('m1', M), removed(M)).when({ type: 'RedeleteMessage', messageId: 'm1', original }).then(tombstone);
  });
  it('race: a message deleted meanwhile, or unknown, is left alone', () => {
    givenChat(group, sent('m1', M), { type: 'MessageDeleted', data: { messageId: 'm1', deletedBy: M } }).when({ type: 'RedeleteMessage', messageId: 'm1', original }).thenNothingHappened();
    givenChat(group).when({ type: 'RedeleteMessage', messageId: 'm1', original }).thenNothingHappened();
  });
});
