import { describe, expect, it } from 'vitest';
import type { ChatEvent, MessageSent, PollPosted } from '@parley/contracts';
import { decideRepair, storedCopy } from './write.js';

const meta = { eventId: 'e-lost', occurredAt: '2026-01-01T00:00:01.000Z', actorId: 'u-1', correlationId: 'c-1', causationId: null };
const lost: MessageSent = {
  type: 'MessageSent',
  version: 1,
  chatId: 'chat-1',
  seq: 5,
  data: { messageId: 'm-1', senderId: 'u-1', clientMsgId: 'k-1', body: 'hi', replyTo: 'm-0', attachmentIds: ['a-1'], attachments: [{ id: 'a-1', name: 'f', size: 1, mime: 'text/plain' }] },
  meta,
};
const at = (seq: number, event: Omit<ChatEvent, 'seq' | 'chatId' | 'version' | 'meta'>) => ({ ...event, seq, chatId: 'chat-1', version: 1, meta }) as ChatEvent;

describe('chat decider: repairing a message the store lost the seq of', () => {
  it('appends the same event at the new seq: the same data, a new event id caused by the lost one, the time and actor kept', () => {
    const decided = decideRepair(lost, [], 6, 'e-new');
    expect(decided).toEqual({ event: { ...lost, seq: 6, meta: { ...meta, eventId: 'e-new', causationId: 'e-lost' } } });
    expect(JSON.stringify((decided as { event: MessageSent }).event.data)).toBe(JSON.stringify(lost.data));
  });

  it('decides nothing again about the message: a sender who left since still gets it appended', () => {
    const left = at(6, { type: 'MemberRemoved', data: { userId: 'u-1', removedBy: 'u-1', reason: 'left', newOwnerId: null } });
    expect(decideRepair(lost, [left], 7, 'e-new')).toMatchObject({ event: { seq: 7, data: lost.data } });
  });

  it('appends nothing when the chat already holds it after the lost seq (an earlier repair), for messages and polls', () => {
    expect(decideRepair(lost, [at(6, { type: 'MessageSent', data: lost.data })], 7, 'e')).toEqual({ refusal: 'repaired' });
    const poll: PollPosted = { type: 'PollPosted', version: 1, chatId: 'chat-1', seq: 5, meta, data: { messageId: 'p-m', senderId: 'u-1', clientMsgId: 'k-2', pollId: 'p-1', question: 'q', options: [{ id: 'a', text: 'A' }], multiple: false } };
    expect(decideRepair(poll, [at(6, { type: 'PollPosted', data: poll.data })], 7, 'e')).toEqual({ refusal: 'repaired' });
    expect(decideRepair(poll, [at(6, { type: 'MessageSent', data: lost.data })], 7, 'e')).toMatchObject({ event: { type: 'PollPosted', seq: 7 } });
  });

  it('appends nothing when the sender resent its clientMsgId as another message meanwhile (past the duplicate window)', () => {
    expect(decideRepair(lost, [at(6, { type: 'MessageSent', data: { ...lost.data, messageId: 'm-2' } })], 7, 'e')).toEqual({ refusal: 'resent' });
    expect(decideRepair(lost, [at(6, { type: 'MessageSent', data: { ...lost.data, messageId: 'm-2', senderId: 'u-2' } })], 7, 'e')).toMatchObject({ event: { seq: 7 } });
  });

  it('appends nothing when the sender was erased with their content since, or retention expired the chat past the lost seq', () => {
    expect(decideRepair(lost, [at(6, { type: 'MemberErased', data: { userId: 'u-1', purged: true, newOwnerId: null } })], 7, 'e')).toEqual({ refusal: 'erased' });
    expect(decideRepair(lost, [at(6, { type: 'MemberErased', data: { userId: 'u-1', purged: false, newOwnerId: null } })], 7, 'e')).toMatchObject({ event: { seq: 7 } });
    expect(decideRepair(lost, [at(6, { type: 'MessagesExpired', data: { upToSeq: 5, cutoff: meta.occurredAt } })], 7, 'e')).toEqual({ refusal: 'expired' });
    expect(decideRepair(lost, [at(6, { type: 'MessagesExpired', data: { upToSeq: 4, cutoff: meta.occurredAt } })], 7, 'e')).toMatchObject({ event: { seq: 7 } });
  });
});

describe('chat decider: the stored copy a resend is answered with', () => {
  const send = { type: 'SendMessage' as const, actorId: 'u-1', data: { messageId: 'm-resend', clientMsgId: 'k-1', body: 'hi', replyTo: null, attachmentIds: [] } };

  it("finds the sender's event with the command's clientMsgId (the seq repair's copy), for sends and polls", () => {
    const other = at(6, { type: 'MessageSent', data: { ...lost.data, messageId: 'm-9', clientMsgId: 'k-9' } });
    const copy = at(7, { type: 'MessageSent', data: lost.data });
    expect(storedCopy(send, [other, copy])).toBe(copy);
    const poll = at(8, { type: 'PollPosted', data: { messageId: 'p-m', senderId: 'u-1', clientMsgId: 'k-2', pollId: 'p-1', question: 'q', options: [{ id: 'a', text: 'A' }], multiple: false } });
    expect(storedCopy({ type: 'PostPoll', actorId: 'u-1', data: { messageId: 'x', clientMsgId: 'k-2', pollId: 'p-2', question: 'q', options: [{ id: 'a', text: 'A' }], multiple: false } }, [copy, poll])).toBe(poll);
  });

  it("finds nothing for another sender's clientMsgId, or for commands that are not a send", () => {
    expect(storedCopy({ ...send, actorId: 'u-2' }, [at(7, { type: 'MessageSent', data: lost.data })])).toBeNull();
    expect(storedCopy({ type: 'Rename', actorId: 'u-1', title: 't' }, [at(7, { type: 'MessageSent', data: lost.data })])).toBeNull();
  });
});
