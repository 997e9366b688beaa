import { RequestRefusedError, publishEvent, readStored, type Bus, type RequestVerifier, type Sequencer } from '@parley/bus';
import { buildMeta, isId, MAX_SENT_LOOKUPS, newId, streamName, subjects, type AttachmentUploaded, type ErasureRecorded, type RpcMethods } from '@parley/contracts';
import { accessibleAttachment, usableAttachments } from './attachments/queries.js';
import { AppError } from '@parley/http';
import { markRead } from './receipts/mark-read.js';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import type { AttachmentStore } from '@parley/storage';
import { retentionPreview, sweepOrphanFiles } from './retention.js';
import { isMember, memberChatsAt, membershipAt } from './chats/queries.js';
import { exportUserData } from './export.js';
import { lookupMessage } from './messages/lookup.js';
import { findByClientMsgIds } from './messages/queries.js';
import { redeleteMessages } from './messages/edit.js';


/** The route whose signed request is the proof messages.export needs (api.md). */
const EXPORT_PATH = '/api/v1/users/me/export';

type Req<M extends keyof RpcMethods> = Partial<RpcMethods[M]['req']> | null;
type Res<M extends keyof RpcMethods> = Promise<RpcMethods[M]['res']>;

/** Internal request/reply methods the messages service answers (contracts RpcMethods). */
export function messagesRpc(
  pool: Pool,
  deps: {
    bus: Bus;
    namespace: string;
    log: Logger;
    store: AttachmentStore;
    sequencer: Sequencer;
    barrier: () => Promise<unknown>;
    attachmentsBarrier: (streamSeq: number) => Promise<boolean>;
    verifier: RequestVerifier;
  },
) {
  return {
    ping: async (): Res<'messages.ping'> => ({ ok: true }),
    memberships: async (req: Req<'messages.memberships'>): Res<'messages.memberships'> =>
      isId(req?.userId) ? memberChatsAt(pool, req.userId) : { chatIds: [], seqs: [] },
    isMember: async (req: Req<'messages.isMember'>): Res<'messages.isMember'> =>
      isId(req?.chatId) && isId(req?.userId) ? membershipAt(pool, req.chatId, req.userId) : { member: false, seq: 0 },
    messageChat: async (req: Req<'messages.messageChat'>): Res<'messages.messageChat'> => {
      if (!isId(req?.messageId) || !isId(req?.userId)) return { chatId: null };
      const message = await lookupMessage({ pool, barrier: deps.barrier }, req.messageId);
      // Only reveal the chat to one of its members.
      return { chatId: message && (await isMember(pool, message.chat_id, req.userId)) ? message.chat_id : null };
    },
    registerAttachment: async (req: Req<'messages.registerAttachment'>): Res<'messages.registerAttachment'> => {
      if (!isId(req?.attachmentId) || !isId(req?.uploaderId) || typeof req.name !== 'string' || typeof req.mime !== 'string' || !Number.isInteger(req.size)) {
        throw new Error('malformed registerAttachment request');
      }
      const event: AttachmentUploaded = {
        type: 'AttachmentUploaded',
        version: 1,
        data: { attachmentId: req.attachmentId, uploaderId: req.uploaderId, name: req.name, size: req.size!, mime: req.mime },
        meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: req.uploaderId, correlationId: newId() }),
      };
      const ack = await publishEvent(deps.bus.js, subjects.attachment(deps.namespace, req.attachmentId), event, { msgId: `attachment:${req.attachmentId}` });
      await deps.attachmentsBarrier(ack.seq);
      return { id: req.attachmentId, name: req.name, size: req.size!, mime: req.mime };
    },
    attachmentAccess: async (req: Req<'messages.attachmentAccess'>): Res<'messages.attachmentAccess'> =>
      isId(req?.attachmentId) && isId(req?.userId) ? accessibleAttachment(pool, req.attachmentId, req.userId) : null,
    attachmentsUsable: async (req: Req<'messages.attachmentsUsable'>): Res<'messages.attachmentsUsable'> => {
      const ids = Array.isArray(req?.attachmentIds) ? req.attachmentIds : [];
      if (!isId(req?.userId) || ids.length > 10 || !ids.every(isId)) return { usable: false, attachments: [] };
      const attachments = await usableAttachments(pool, ids, req.userId);
      return attachments ? { usable: true, attachments } : { usable: false, attachments: [] };
    },
    export: async (req: Req<'messages.export'>): Res<'messages.export'> => {
      if (!isId(req?.userId)) throw new Error('malformed export request');
      // Only for the user whose own export request the gateway signed (users passes it on).
      const { problem, payload } = deps.verifier.checkProof(req.proof ?? undefined, subjects.api(deps.namespace, 'users'));
      const asked = payload as { method?: unknown; path?: unknown; auth?: { userId?: unknown } | null } | null;
      if (problem || asked?.method !== 'GET' || asked.path !== EXPORT_PATH || asked.auth?.userId !== req.userId) {
        deps.log.warn({ problem: problem ?? 'not an export request of this user' }, 'messages.export refused');
        throw new RequestRefusedError('messages.export needs the user\'s signed export request');
      }
      return exportUserData(pool, req.userId);
    },
    sentMessages: async (req: Req<'messages.sentMessages'>): Res<'messages.sentMessages'> => {
      const sends: unknown[] = Array.isArray(req?.sends) ? req.sends.slice(0, MAX_SENT_LOOKUPS) : [];
      // A malformed entry cannot match anything stored: it is answered null without a lookup.
      const valid = sends.flatMap((s, i) => {
        const x = s as { chatId?: unknown; senderId?: unknown; clientMsgId?: unknown } | null;
        return isId(x?.chatId) && isId(x?.senderId) && typeof x?.clientMsgId === 'string' ? [{ i, chatId: x.chatId, senderId: x.senderId, clientMsgId: x.clientMsgId }] : [];
      });
      const rows = await findByClientMsgIds(pool, valid);
      const found: RpcMethods['messages.sentMessages']['res']['found'] = sends.map(() => null);
      valid.forEach(({ i }, k) => (found[i] = rows[k] ?? null));
      return { found };
    },
    /** The WebSocket `read` frame, forwarded by the gateway. */
    markRead: async (req: Req<'messages.markRead'>): Res<'messages.markRead'> => {
      if (!isId(req?.chatId) || !isId(req?.userId) || !isId(req?.messageId)) return { ok: false, code: 'invalid_request' };
      try {
        return { ok: true, seq: await markRead({ ...deps, pool }, req.userId, req.chatId, req.messageId, newId()) };
      } catch (error) {
        if (error instanceof AppError) return { ok: false, code: error.code };
        throw error;
      }
    },
    redelete: async (req: Req<'messages.redelete'>): Res<'messages.redelete'> => {
      const asked = Array.isArray(req?.messageIds) ? req.messageIds.filter(isId).slice(0, 1000) : [];
      // Only messages the erasure ledger names (written by users and messages alone): the ledger
      // is the proof, so retention's credentials cannot delete anybody's messages.
      const ids = await inLedger(deps, asked);
      return { deleted: ids.length === 0 ? 0 : await redeleteMessages({ pool, namespace: deps.namespace, sequencer: deps.sequencer, barrier: deps.barrier }, ids) };
    },
    retentionPreview: (req: Req<'messages.retentionPreview'>): Res<'messages.retentionPreview'> => retentionPreview(pool, req),
    sweepFiles: async (req: Req<'messages.sweepFiles'>): Res<'messages.sweepFiles'> => {
      const olderThan = new Date(typeof req?.olderThan === 'string' ? req.olderThan : Number.NaN);
      if (Number.isNaN(olderThan.getTime())) throw new Error('malformed sweepFiles request');
      return { deleted: await sweepOrphanFiles(pool, deps.store, olderThan, deps.log) };
    },
  };
}

/** The ids among `messageIds` that the erasure ledger records as erased messages. */
async function inLedger(deps: { bus: Bus; namespace: string }, messageIds: string[]): Promise<string[]> {
  const stream = streamName(deps.namespace, 'erasures');
  const found: string[] = [];
  for (let i = 0; i < messageIds.length; i += 50) {
    const batch = messageIds.slice(i, i + 50);
    const entries = await Promise.all(
      batch.map((id) => readStored<ErasureRecorded>(deps.bus.jsm, stream, { last_by_subj: subjects.erasedMessage(deps.namespace, id) }).catch(() => null)),
    );
    entries.forEach((e, k) => {
      if (e?.value.type === 'ErasureRecorded' && e.value.data.kind === 'message' && e.value.data.messageId === batch[k]) found.push(batch[k]!);
    });
  }
  return found;
}
