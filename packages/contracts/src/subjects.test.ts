import { describe, expect, it } from 'vitest';
import { chatIdOfSubject, subjects } from './subjects.js';

// A NATS subject token may not contain these: `.` splits tokens, `*` and `>` are wildcards.
const SUBJECT_TOKEN = /^[^.*>\s]+$/;

describe('subjects', () => {
  it('prefixes every family with the namespace, so two installations never share a subject', () => {
    const built = [
      subjects.chat('nsa', 'c1'),
      subjects.allChats('nsa'),
      subjects.directChatClaim('nsa', 'u1', 'u2'),
      subjects.allChatClaims('nsa'),
      subjects.chatSnapshot('nsa', 'c1'),
      subjects.allChatSnapshots('nsa'),
      subjects.user('nsa', 'u1'),
      subjects.allUsers('nsa'),
      subjects.identityClaim('nsa', 'username', 'alice'),
      subjects.allIdentityClaims('nsa'),
      subjects.attachment('nsa', 'a1'),
      subjects.allAttachments('nsa'),
      subjects.receipt('nsa', 'c1', 'u1'),
      subjects.allReceipts('nsa'),
      subjects.audit('nsa', 'u1'),
      subjects.audit('nsa', null),
      subjects.allAudit('nsa'),
      subjects.revocation('nsa', 's1'),
      subjects.allRevocations('nsa'),
      subjects.reset('nsa', 'u1'),
      subjects.allResets('nsa'),
      subjects.api('nsa', 'users'),
      subjects.rpc('nsa', 'messages', 'isMember'),
    ];
    for (const subject of built) expect(subject.split('.')[0]).toBe('nsa');
    expect(subjects.chat('nsa', 'c1')).not.toBe(subjects.chat('nsb', 'c1'));
  });

  it('lays out the documented subject families', () => {
    expect(subjects.chat('p', 'c1')).toBe('p.chat.c1');
    expect(subjects.allChats('p')).toBe('p.chat.*');
    expect(subjects.user('p', 'u1')).toBe('p.user.u1');
    expect(subjects.allUsers('p')).toBe('p.user.*');
    expect(subjects.api('p', 'messages')).toBe('p.api.messages');
    expect(subjects.rpc('p', 'users', 'existing')).toBe('p.rpc.users.existing');
    expect(subjects.allChatClaims('p')).toBe('p.chatclaim.*');
    // Not matched by p.chat.*: the retention purge of old chat events leaves the snapshots alone.
    expect(subjects.chatSnapshot('p', 'c1')).toBe('p.chatsnap.c1');
    expect(subjects.allChatSnapshots('p')).toBe('p.chatsnap.*');
    expect(subjects.allIdentityClaims('p')).toBe('p.userclaim.*.*');
    expect(subjects.receipt('p', 'c1', 'u1')).toBe('p.receipt.c1.u1');
    expect(subjects.allReceipts('p')).toBe('p.receipt.*.*');
    expect(subjects.audit('p', 'u1')).toBe('p.audit.u1');
    expect(subjects.audit('p', null)).toBe('p.audit.anonymous');
    expect(subjects.revocation('p', 's1')).toBe('p.revocation.s1');
    expect(subjects.reset('p', 'u1')).toBe('p.reset.u1');
    expect(subjects.attachment('p', 'a1')).toBe('p.attachment.a1');
  });

  it('hides an e-mail address behind a hash that is a single valid subject token', () => {
    const subject = subjects.identityClaim('p', 'email', 'Alice.Smith@Example.com');
    expect(subject.startsWith('p.userclaim.email.')).toBe(true);
    const token = subject.slice('p.userclaim.email.'.length);
    expect(token).toMatch(SUBJECT_TOKEN);
    expect(subject.toLowerCase()).not.toContain('alice');
    expect(subject.toLowerCase()).not.toContain('example');
    expect(subject).not.toContain('@');
    // Exactly four tokens, so `allIdentityClaims` (p.userclaim.*.*) matches it.
    expect(subject.split('.')).toHaveLength(4);
  });

  it('hashes identity values case-insensitively, so Alice@x and alice@X claim the same name', () => {
    expect(subjects.identityClaim('p', 'email', 'Alice@Example.COM')).toBe(subjects.identityClaim('p', 'email', 'alice@example.com'));
    expect(subjects.identityClaim('p', 'username', 'Bob')).toBe(subjects.identityClaim('p', 'username', 'bob'));
  });

  it('keeps different values, and the same value of different kinds, apart', () => {
    expect(subjects.identityClaim('p', 'email', 'a@x.io')).not.toBe(subjects.identityClaim('p', 'email', 'b@x.io'));
    expect(subjects.identityClaim('p', 'username', 'alice')).not.toBe(subjects.identityClaim('p', 'email', 'alice'));
  });

  it('builds the direct-chat claim subject independently of the order of the two users', () => {
    const ab = subjects.directChatClaim('p', 'user-a', 'user-b');
    const ba = subjects.directChatClaim('p', 'user-b', 'user-a');
    expect(ab).toBe(ba);
    expect(ab.startsWith('p.chatclaim.')).toBe(true);
    expect(ab.split('.')).toHaveLength(3);
    expect(ab.split('.')[2]).toMatch(SUBJECT_TOKEN);
    expect(ab).not.toContain('user-a');
  });

  it('gives each pair of users its own direct-chat claim subject', () => {
    const ab = subjects.directChatClaim('p', 'user-a', 'user-b');
    expect(subjects.directChatClaim('p', 'user-a', 'user-c')).not.toBe(ab);
    expect(subjects.directChatClaim('p', 'user-c', 'user-b')).not.toBe(ab);
  });

  it('reads the chat id back out of a chat subject', () => {
    const chatId = '0193a5b2-7c3d-7e4f-8a9b-0c1d2e3f4a5b';
    expect(chatIdOfSubject(subjects.chat('parley', chatId))).toBe(chatId);
  });
});
