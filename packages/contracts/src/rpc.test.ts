import { describe, expect, it } from 'vitest';
import { MAX_RPC_BATCH, MAX_SENT_LOOKUPS, RPC_SCHEMAS, rpcValidator, type RpcMethod, type RpcMethods } from './rpc.js';

const id = (n: number) => `01900000-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;
const at = '2026-01-02T03:04:05.006Z';
const file = { id: id(9), name: 'plan.pdf', size: 1234, mime: 'application/pdf' };
const proof = { subject: 'p.api.users', assertion: 'v1.1.a.b', payload: 'e30=' };

/** A valid request and reply of every method, typed by RpcMethods: the types and these examples agree. */
const examples: { [M in RpcMethod]: RpcMethods[M] } = {
  'users.existing': { req: { userIds: [id(1), id(2)] }, res: { userIds: [id(1)] } },
  'users.admission': { req: { actorId: id(1), userIds: [id(2), id(3)], purpose: 'group' }, res: { existing: [id(2), id(3)], refused: [id(3)] } },
  'users.ping': { req: {}, res: { ok: true } },
  'messages.ping': { req: {}, res: { ok: true } },
  'users.watchers': { req: { userId: id(1) }, res: { userIds: [id(2)], chatPeers: true, blocked: [id(3)] } },
  'users.presenceVisibleMany': { req: { viewers: [{ viewerId: id(1), chatPeerIds: [id(2)] }] }, res: { userIds: [[id(2)]] } },
  'messages.socketSetups': { req: { userIds: [id(1)] }, res: { users: [{ chatIds: [id(3)], seqs: [7], peerIds: [id(2)] }] } },
  'messages.memberships': { req: { userId: id(1) }, res: { chatIds: [id(3)], seqs: [7] } },
  'messages.isMember': { req: { chatId: id(3), userId: id(1) }, res: { member: true, seq: 7 } },
  'messages.messageChat': { req: { messageId: id(4), userId: id(1) }, res: { chatId: null } },
  'messages.registerAttachment': { req: { attachmentId: id(9), uploaderId: id(1), name: 'plan.pdf', size: 1234, mime: 'application/pdf' }, res: file },
  'messages.attachmentAccess': { req: { attachmentId: id(9), userId: id(1) }, res: file },
  'messages.attachmentsUsable': { req: { attachmentIds: [id(9)], userId: id(1) }, res: { usable: true, attachments: [file] } },
  'messages.sentMessages': { req: { sends: [{ chatId: id(3), senderId: id(1), clientMsgId: 'k-1' }] }, res: { found: [{ messageId: id(4), seq: 2 }, null] } },
  'messages.export': {
    req: { userId: id(1), proof },
    res: {
      chats: [{ id: id(3), type: 'group', title: null, role: 'owner' }],
      messages: [{ id: id(4), chatId: id(3), seq: 2, body: 'hi', replyTo: null, createdAt: at, editedAt: null, deletedAt: at }],
      reactions: [{ messageId: id(4), emoji: '👍' }],
      pollVotes: [{ pollId: id(5), optionId: 'a' }],
      readPositions: [{ chatId: id(3), seq: 2 }],
      attachments: [{ ...file, uploadedAt: at }],
    },
  },
  'messages.markRead': { req: { chatId: id(3), userId: id(1), messageId: id(4) }, res: { ok: false, code: 'not_found' } },
  'messages.retentionPreview': {
    req: { chats: [{ chatId: id(3), upToSeq: 10 }], receiptsCutoff: at },
    res: { messages: 1, reactions: 0, polls: 0, pollVotes: 0, attachments: 0, readReceipts: 3 },
  },
  'messages.sweepFiles': { req: { olderThan: at }, res: { deleted: 0 } },
  'messages.attachmentsKept': { req: { attachmentIds: [id(2)], fromStreamSeq: 12 }, res: { kept: [id(2)] } },
  'messages.retentionBacklog': { req: {}, res: { pending: 2 } },
  'messages.pendingUploads': { req: { userId: id(1) }, res: { bytes: 1024, files: 1 } },
  'messages.redelete': { req: { messageIds: [id(4)] }, res: { deleted: 1 } },
  'users.reerase': { req: { userId: id(1), purgeMessages: true }, res: { erased: false } },
  'users.retentionPreview': { req: { auditCutoff: at, resetCutoff: at }, res: { auditEntries: 4, resetTokens: 0 } },
};

const methods = Object.keys(RPC_SCHEMAS) as RpcMethod[];
const accepts = (method: RpcMethod, part: 'req' | 'res', value: unknown) => rpcValidator(method, part).check(value);
const firstPath = (method: RpcMethod, part: 'req' | 'res', value: unknown) => rpcValidator(method, part).issues(value, 1)[0]?.path;

describe('RPC_SCHEMAS', () => {
  it.each(methods)('%s: accepts its example request and reply, and refuses an unknown field in either', (method) => {
    const { req, res } = examples[method];
    expect(accepts(method, 'req', req)).toBe(true);
    expect(accepts(method, 'res', res)).toBe(true);
    expect(accepts(method, 'req', { ...req, isAdmin: true })).toBe(false);
    expect(accepts(method, 'res', { ...res, passwordHash: 'x' })).toBe(false);
  });

  it.each(methods)('%s: refuses a request that is not an object', (method) => {
    for (const value of [null, undefined, 'x', 42, []]) expect(accepts(method, 'req', value)).toBe(false);
  });

  it('refuses wrong types and missing fields, naming where', () => {
    expect(firstPath('users.watchers', 'req', { userId: 42 })).toBe('/userId');
    expect(firstPath('users.watchers', 'req', { userId: 'alice' })).toBe('/userId');
    expect(firstPath('messages.isMember', 'req', { chatId: id(3) })).toBe('/userId');
    expect(firstPath('users.reerase', 'req', { userId: id(1), purgeMessages: 'yes' })).toBe('/purgeMessages');
    expect(firstPath('messages.sentMessages', 'req', { sends: [{ chatId: id(3), senderId: id(1) }] })).toBe('/sends/0/clientMsgId');
    expect(firstPath('messages.registerAttachment', 'req', { ...examples['messages.registerAttachment'].req, size: 1.5 })).toBe('/size');
    expect(firstPath('messages.export', 'req', { userId: id(1) })).toBe('/proof');
  });

  it('keeps the batch limits: MAX_RPC_BATCH ids or chats, MAX_SENT_LOOKUPS sends, 10 distinct attachments', () => {
    const ids = (n: number) => Array.from({ length: n }, (_, i) => id(i));
    expect(accepts('users.existing', 'req', { userIds: ids(MAX_RPC_BATCH) })).toBe(true);
    expect(firstPath('users.existing', 'req', { userIds: ids(MAX_RPC_BATCH + 1) })).toBe('/userIds');
    expect(accepts('messages.redelete', 'req', { messageIds: ids(MAX_RPC_BATCH + 1) })).toBe(false);
    const chats = (n: number) => ids(n).map((chatId) => ({ chatId, upToSeq: 1 }));
    expect(accepts('messages.retentionPreview', 'req', { chats: chats(MAX_RPC_BATCH), receiptsCutoff: null })).toBe(true);
    expect(accepts('messages.retentionPreview', 'req', { chats: chats(MAX_RPC_BATCH + 1), receiptsCutoff: null })).toBe(false);
    const sends = (n: number) => ids(n).map((chatId) => ({ chatId, senderId: id(1), clientMsgId: 'k' }));
    expect(accepts('messages.sentMessages', 'req', { sends: sends(MAX_SENT_LOOKUPS) })).toBe(true);
    expect(accepts('messages.sentMessages', 'req', { sends: sends(MAX_SENT_LOOKUPS + 1) })).toBe(false);
    expect(accepts('messages.attachmentsUsable', 'req', { attachmentIds: ids(10), userId: id(1) })).toBe(true);
    expect(accepts('messages.attachmentsUsable', 'req', { attachmentIds: ids(11), userId: id(1) })).toBe(false);
    expect(accepts('messages.attachmentsUsable', 'req', { attachmentIds: [id(9), id(9)], userId: id(1) })).toBe(false);
  });

  it('takes times as toISOString writes them, and nothing else', () => {
    expect(accepts('messages.sweepFiles', 'req', { olderThan: new Date().toISOString() })).toBe(true);
    for (const olderThan of ['2026-01-02', 'yesterday', '2026-01-02T03:04:05+02:00', 1_767_000_000_000]) {
      expect(accepts('messages.sweepFiles', 'req', { olderThan })).toBe(false);
    }
  });

  it('replies: markRead is one of its two shapes, ids are ids, counts are whole and not negative', () => {
    expect(accepts('messages.markRead', 'res', { ok: true, seq: 3 })).toBe(true);
    expect(accepts('messages.markRead', 'res', { ok: true, code: 'not_found' })).toBe(false);
    expect(accepts('messages.memberships', 'res', { chatIds: ['not-an-id'], seqs: [1] })).toBe(false);
    expect(accepts('users.retentionPreview', 'res', { auditEntries: -1, resetTokens: 0 })).toBe(false);
    expect(accepts('messages.sweepFiles', 'res', { deleted: '3' })).toBe(false);
    expect(accepts('messages.attachmentAccess', 'res', null)).toBe(true);
  });

  it('compiles each check once', () => {
    expect(rpcValidator('users.existing', 'req')).toBe(rpcValidator('users.existing', 'req'));
    expect(rpcValidator('users.existing', 'req')).not.toBe(rpcValidator('users.existing', 'res'));
  });
});
