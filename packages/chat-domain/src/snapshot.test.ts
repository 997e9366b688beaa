import { describe, expect, it } from 'vitest';
import type { ChatEvent } from '@parley/contracts';
import { foldSnapshot } from './snapshot.js';

let seq = 0;
const at = (day: number) => new Date(Date.UTC(2025, 0, 1 + day)).toISOString();
const ev = (type: ChatEvent['type'], data: unknown, day = seq): ChatEvent =>
  ({ type, version: 1, chatId: 'c1', seq: ++seq, data, meta: { eventId: `e${seq}`, occurredAt: at(day), actorId: null, correlationId: 'x' } }) as ChatEvent;

describe('foldSnapshot', () => {
  it('folds a chat structure the way the projection does: members, roles, joinedSeq, title, owner succession, activity', () => {
    seq = 0;
    const events = [
      ev('ChatCreated', { type: 'group', title: 'a', createdBy: 'o', members: [{ userId: 'o', role: 'owner' }, { userId: 'm', role: 'member' }] }, 0),
      ev('MessageSent', { messageId: 'x', senderId: 'm', clientMsgId: 'c', body: 'hi', replyTo: null, attachmentIds: [] }, 3),
      ev('MemberAdded', { userId: 'n', role: 'admin', addedBy: 'o' }, 4),
      ev('ChatRenamed', { title: 'b', renamedBy: 'o' }, 5),
      ev('MemberRemoved', { userId: 'o', removedBy: 'o', reason: 'left', newOwnerId: 'n' }, 6),
      ev('ReactionAdded', { messageId: 'x', userId: 'm', emoji: '👍' }, 9),
    ];
    const snapshot = foldSnapshot(null, events);
    expect(snapshot).toEqual({
      chatId: 'c1',
      seq: 6,
      type: 'group',
      title: 'b',
      createdBy: 'o',
      createdAt: at(0),
      // A reaction is not activity (the chat list does not move for it); MemberAdded is.
      lastActivityAt: at(4),
      pair: null,
      members: [
        { userId: 'm', role: 'member', joinedSeq: 1 },
        { userId: 'n', role: 'owner', joinedSeq: 3 },
      ],
    });
  });

  it('continues from an earlier snapshot and skips what that one folded already (a rerun after a crash)', () => {
    seq = 0;
    const created = ev('ChatCreated', { type: 'group', title: 't', createdBy: 'o', members: [{ userId: 'o', role: 'owner' }] }, 0);
    const added = ev('MemberAdded', { userId: 'm', role: 'member', addedBy: 'o' }, 1);
    const first = foldSnapshot(null, [created, added])!;
    const removed = ev('MemberRemoved', { userId: 'm', removedBy: 'o', reason: 'removed', newOwnerId: null }, 2);
    const erased = ev('MemberErased', { userId: 'o', purged: false, newOwnerId: null }, 3);
    const second = foldSnapshot(first, [created, added, removed, erased]);
    expect(second).toMatchObject({ seq: 4, members: [] });
    // The earlier snapshot is not changed in place.
    expect(first.members).toHaveLength(2);
  });

  it('has nothing to fold into without a snapshot or a ChatCreated', () => {
    seq = 5;
    expect(foldSnapshot(null, [ev('ChatRenamed', { title: 'x', renamedBy: 'o' })])).toBeNull();
  });
});
