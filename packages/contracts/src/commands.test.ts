import { describe, expect, it } from 'vitest';
import { messageBodyProblem, messageSent, sendMessageId, type SendMessageCommand } from './commands.js';
import { parseChatEvent } from './validate.js';

describe('messageBodyProblem', () => {
  it('refuses an empty or whitespace-only body without attachments', () => {
    expect(messageBodyProblem('', 100, false)).toBe('body must not be empty');
    expect(messageBodyProblem(' \n\t\u00a0 ', 100, false)).toBe('body must not be empty');
  });

  it('allows an empty body when the message carries attachments', () => {
    expect(messageBodyProblem('', 100, true)).toBeNull();
  });

  it('accepts a body of exactly the limit and refuses one code point more', () => {
    expect(messageBodyProblem('a'.repeat(10), 10, false)).toBeNull();
    expect(messageBodyProblem('a'.repeat(11), 10, false)).toBe('body is longer than 10 characters');
  });

  it('counts code points, not UTF-16 units, so an emoji is one character', () => {
    const fiveEmoji = '😀'.repeat(5);
    expect(fiveEmoji.length).toBe(10); // UTF-16 would count ten
    expect(messageBodyProblem(fiveEmoji, 5, false)).toBeNull();
    expect(messageBodyProblem(fiveEmoji, 4, false)).toBe('body is longer than 4 characters');
    expect(messageBodyProblem('héllo 👋🏽', 8, false)).toBeNull(); // h é l l o space wave skin-tone = 8
    expect(messageBodyProblem('héllo 👋🏽', 7, false)).not.toBeNull();
  });
});

describe('sendMessageId', () => {
  it('maps the same retry to the same id and different senders or client ids to different ones', () => {
    expect(sendMessageId('c', 'u', 'k')).toBe(sendMessageId('c', 'u', 'k'));
    expect(sendMessageId('c', 'u', 'k')).not.toBe(sendMessageId('c', 'u2', 'k'));
    expect(sendMessageId('c', 'u', 'k')).not.toBe(sendMessageId('c', 'u', 'k2'));
    expect(sendMessageId('c', 'u', 'k')).not.toBe(sendMessageId('c2', 'u', 'k'));
  });
});

describe('messageSent', () => {
  const command: SendMessageCommand = {
    chatId: 'chat-1',
    senderId: 'user-1',
    messageId: 'msg-1',
    clientMsgId: 'client-1',
    body: 'hello',
    replyTo: 'msg-0',
    attachmentIds: ['att-1'],
    at: new Date('2026-03-04T05:06:07.089Z'),
    eventId: 'evt-1',
    correlationId: 'corr-1',
  };

  it('builds the MessageSent event with the assigned seq, the ids and the sender as actor', () => {
    expect(messageSent(command, 7)).toEqual({
      type: 'MessageSent',
      version: 1,
      chatId: 'chat-1',
      seq: 7,
      data: {
        messageId: 'msg-1',
        senderId: 'user-1',
        clientMsgId: 'client-1',
        body: 'hello',
        replyTo: 'msg-0',
        attachmentIds: ['att-1'],
      },
      meta: {
        eventId: 'evt-1',
        occurredAt: '2026-03-04T05:06:07.089Z',
        actorId: 'user-1',
        correlationId: 'corr-1',
        causationId: null,
      },
    });
  });

  it('produces an event that the catalogue accepts', () => {
    expect(parseChatEvent(messageSent(command, 1)).ok).toBe(true);
  });

  it('carries attachment metadata only when there is some', () => {
    const attachments = [{ id: 'att-1', name: 'cat.png', size: 1234, mime: 'image/png' }];
    const withMeta = messageSent({ ...command, attachments }, 3);
    expect(withMeta.data.attachments).toEqual(attachments);
    expect(parseChatEvent(withMeta).ok).toBe(true);
    expect('attachments' in messageSent({ ...command, attachments: [] }, 3).data).toBe(false);
    expect('attachments' in messageSent(command, 3).data).toBe(false);
  });
});
