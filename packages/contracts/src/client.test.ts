import { describe, expect, it } from 'vitest';
import { memberRemovedBy, membersAddedBy, toClientEvent } from './client.js';
import type { ChatCreated, MemberAdded, MemberRemoved, MessageSent } from './events/chats.js';

const meta = (at: string) => ({ eventId: 'e', occurredAt: at, actorId: 'u-1', correlationId: 'c', causationId: null });

const created: ChatCreated = {
  type: 'ChatCreated',
  version: 1,
  chatId: 'chat-1',
  seq: 1,
  data: {
    type: 'group',
    title: 'Team',
    members: [
      { userId: 'u-1', role: 'owner' },
      { userId: 'u-2', role: 'member' },
    ],
    createdBy: 'u-1',
  },
  meta: meta('2026-01-01T00:00:00.000Z'),
};

const sent: MessageSent = {
  type: 'MessageSent',
  version: 1,
  chatId: 'chat-1',
  seq: 2,
  data: { messageId: 'msg-1', senderId: 'u-2', clientMsgId: 'k-1', body: 'hello', replyTo: null, attachmentIds: [] },
  meta: meta('2026-01-01T00:00:01.000Z'),
};

describe('toClientEvent', () => {
  it('maps ChatCreated to a chat.created frame carrying api.md\'s chat shape', () => {
    expect(toClientEvent(created)).toEqual({
      op: 'event',
      type: 'chat.created',
      chatId: 'chat-1',
      seq: 1,
      at: '2026-01-01T00:00:00.000Z',
      data: {
        id: 'chat-1',
        type: 'group',
        title: 'Team',
        members: [
          { userId: 'u-1', role: 'owner' },
          { userId: 'u-2', role: 'member' },
        ],
        lastMessage: null,
        unreadCount: 0,
        createdAt: '2026-01-01T00:00:00.000Z',
      },
    });
  });

  it('maps MessageSent to a message.created frame carrying api.md\'s message shape', () => {
    const frame = toClientEvent(sent);
    expect(frame).toMatchObject({ op: 'event', type: 'message.created', chatId: 'chat-1', seq: 2, at: '2026-01-01T00:00:01.000Z' });
    // api.md: {id, chatId, senderId, body, replyTo|null, attachments, reactions, poll|null, editedAt|null, deletedAt|null, createdAt, seq}
    expect(frame.data).toEqual({
      id: 'msg-1',
      chatId: 'chat-1',
      senderId: 'u-2',
      body: 'hello',
      replyTo: null,
      attachments: [],
      reactions: [],
      poll: null,
      editedAt: null,
      deletedAt: null,
      createdAt: '2026-01-01T00:00:01.000Z',
      seq: 2,
    });
    expect(Object.keys(frame)).toEqual(expect.arrayContaining(['op', 'type', 'chatId', 'seq', 'data', 'at']));
  });

  it('puts the attachments\' metadata carried by the event into the message view', () => {
    const attachments = [{ id: 'att-1', name: 'cat.png', size: 1234, mime: 'image/png' }];
    const withFiles: MessageSent = { ...sent, data: { ...sent.data, attachmentIds: ['att-1'], attachments } };
    expect((toClientEvent(withFiles).data as { attachments: unknown }).attachments).toEqual(attachments);
  });

  it('keeps a reply target in the message view', () => {
    const reply: MessageSent = { ...sent, data: { ...sent.data, replyTo: 'msg-0' } };
    expect((toClientEvent(reply).data as { replyTo: string | null }).replyTo).toBe('msg-0');
  });

  it('throws for an event type it has no mapping for rather than sending junk', () => {
    const unknown = { ...sent, type: 'MessageShredded' } as unknown as MessageSent;
    expect(() => toClientEvent(unknown)).toThrow(/no client mapping for event MessageShredded/);
  });
});

const added: MemberAdded = {
  type: 'MemberAdded',
  version: 1,
  chatId: 'chat-1',
  seq: 3,
  data: { userId: 'u-3', role: 'member', addedBy: 'u-1' },
  meta: meta('2026-01-01T00:00:02.000Z'),
};

const removed: MemberRemoved = {
  type: 'MemberRemoved',
  version: 1,
  chatId: 'chat-1',
  seq: 4,
  data: { userId: 'u-1', removedBy: 'u-1', reason: 'left', newOwnerId: 'u-2' },
  meta: meta('2026-01-01T00:00:03.000Z'),
};

describe('membership changes', () => {
  it('map to member.added and member.removed frames', () => {
    expect(toClientEvent(added)).toEqual({
      op: 'event',
      type: 'member.added',
      chatId: 'chat-1',
      seq: 3,
      at: '2026-01-01T00:00:02.000Z',
      data: { userId: 'u-3', role: 'member' },
    });
    expect(toClientEvent(removed)).toMatchObject({
      type: 'member.removed',
      seq: 4,
      data: { userId: 'u-1', reason: 'left', newOwnerId: 'u-2' },
    });
  });

  it('name who joins and who leaves, and nobody for a message', () => {
    expect(membersAddedBy(created)).toEqual(['u-1', 'u-2']);
    expect(membersAddedBy(added)).toEqual(['u-3']);
    expect(membersAddedBy(sent)).toEqual([]);
    expect(memberRemovedBy(removed)).toBe('u-1');
    expect(memberRemovedBy(added)).toBeNull();
  });
});
