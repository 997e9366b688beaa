import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { compile, parseChatEvent, parseUserEvent } from './validate.js';

const meta = {
  eventId: 'e-1',
  occurredAt: '2026-01-02T03:04:05.006Z',
  actorId: 'u-1',
  correlationId: 'corr-1',
  causationId: null,
};

function chatCreated() {
  return {
    type: 'ChatCreated',
    version: 1,
    chatId: 'c-1',
    seq: 1,
    data: { type: 'group', title: 'Team', members: [{ userId: 'u-1', role: 'owner' }], createdBy: 'u-1' },
    meta: { ...meta },
  };
}

function messageSent() {
  return {
    type: 'MessageSent',
    version: 1,
    chatId: 'c-1',
    seq: 2,
    data: { messageId: 'm-1', senderId: 'u-1', clientMsgId: 'k-1', body: 'hi', replyTo: null, attachmentIds: [] },
    meta: { ...meta },
  };
}

function userRegistered() {
  return {
    type: 'UserRegistered',
    version: 1,
    data: { userId: 'u-1', username: 'alice', email: 'a@x.io', displayName: 'Alice', passwordHash: '$argon2id$...' },
    meta: { ...meta, actorId: null },
  };
}

function reasonOf(result: { ok: true } | { ok: false; reason: string }): string {
  if (result.ok) throw new Error('expected the event to be refused');
  return result.reason;
}

describe('parseChatEvent', () => {
  it('accepts a valid ChatCreated and MessageSent and returns the same event', () => {
    for (const value of [chatCreated(), messageSent()]) {
      const result = parseChatEvent(value);
      expect(result).toEqual({ ok: true, event: value });
    }
  });

  it('refuses something that is not an object', () => {
    expect(reasonOf(parseChatEvent(null))).toBe('not an object');
    expect(reasonOf(parseChatEvent('MessageSent'))).toBe('not an object');
  });

  it('refuses an unknown type, an unknown version, and another context\'s event', () => {
    expect(reasonOf(parseChatEvent({ ...messageSent(), type: 'MessageShredded' }))).toBe('unknown event MessageShredded v1');
    expect(reasonOf(parseChatEvent({ ...messageSent(), version: 2 }))).toBe('unknown event MessageSent v2');
    expect(reasonOf(parseChatEvent({ ...messageSent(), version: '1' }))).toMatch(/^invalid MessageSent/);
    expect(reasonOf(parseChatEvent(userRegistered()))).toBe('unknown event UserRegistered v1');
  });

  it('refuses wrong shapes, naming the offending path', () => {
    const seqZero = { ...messageSent(), seq: 0 };
    expect(reasonOf(parseChatEvent(seqZero))).toMatch(/^invalid MessageSent: \/seq /);

    const fractionalSeq = { ...messageSent(), seq: 1.5 };
    expect(reasonOf(parseChatEvent(fractionalSeq))).toMatch(/\/seq/);

    const numericBody = messageSent();
    (numericBody.data as Record<string, unknown>).body = 42;
    expect(reasonOf(parseChatEvent(numericBody))).toMatch(/\/data\/body/);

    const noChatId: Record<string, unknown> = messageSent();
    delete noChatId.chatId;
    expect(reasonOf(parseChatEvent(noChatId))).toMatch(/\/chatId/);

    const noCorrelation: Record<string, unknown> = { ...messageSent(), meta: { ...meta, correlationId: undefined } };
    delete (noCorrelation.meta as Record<string, unknown>).correlationId;
    expect(reasonOf(parseChatEvent(noCorrelation))).toMatch(/\/meta\/correlationId/);

    const badRole = chatCreated();
    badRole.data.members = [{ userId: 'u-1', role: 'emperor' }];
    expect(reasonOf(parseChatEvent(badRole))).toMatch(/^invalid ChatCreated: \/data\/members\/0\/role/);
  });

  it('refuses extra fields at the top level, in data and in meta', () => {
    expect(parseChatEvent({ ...messageSent(), extra: 1 }).ok).toBe(false);

    const extraData = messageSent();
    (extraData.data as Record<string, unknown>).isAdmin = true;
    expect(parseChatEvent(extraData).ok).toBe(false);

    const extraMeta = messageSent();
    (extraMeta.meta as Record<string, unknown>).ip = '10.0.0.1';
    expect(parseChatEvent(extraMeta).ok).toBe(false);

    const extraMember = chatCreated();
    (extraMember.data.members[0] as Record<string, unknown>).muted = true;
    expect(parseChatEvent(extraMember).ok).toBe(false);
  });
});

describe('parseUserEvent', () => {
  it('accepts a valid UserRegistered', () => {
    const value = userRegistered();
    expect(parseUserEvent(value)).toEqual({ ok: true, event: value });
  });

  it('refuses chat events, unknown versions, wrong shapes and extra fields', () => {
    expect(reasonOf(parseUserEvent(messageSent()))).toBe('unknown event MessageSent v1');
    expect(reasonOf(parseUserEvent({ ...userRegistered(), version: 2 }))).toBe('unknown event UserRegistered v2');

    const missingHash: Record<string, unknown> = userRegistered();
    delete (missingHash.data as Record<string, unknown>).passwordHash;
    expect(reasonOf(parseUserEvent(missingHash))).toMatch(/^invalid UserRegistered: \/data\/passwordHash/);

    const withPassword = userRegistered();
    (withPassword.data as Record<string, unknown>).password = 'hunter2';
    expect(parseUserEvent(withPassword).ok).toBe(false);

    expect(parseUserEvent({ ...userRegistered(), seq: 1 }).ok).toBe(false);
  });
});

describe('compile', () => {
  it('checks a value and lists its issues up to the limit', () => {
    const validator = compile(Type.Object({ a: Type.String(), b: Type.Number(), c: Type.Boolean() }));
    expect(validator.check({ a: 'x', b: 1, c: true })).toBe(true);
    expect(validator.check({ a: 1, b: 'x', c: 'y' })).toBe(false);
    expect(validator.issues({ a: 'x', b: 1, c: true })).toEqual([]);
    const issues = validator.issues({ a: 1, b: 'x', c: 'y' });
    expect(issues.map((i) => i.path)).toEqual(['/a', '/b', '/c']);
    expect(validator.issues({ a: 1, b: 'x', c: 'y' }, 2)).toHaveLength(2);
  });
});
