import { RequestRefusedError, publishEvent, type Bus, type RequestVerifier, type RpcHandlers } from '@parley/bus';
import { buildMeta, newId, subjects, type AttachmentUploaded } from '@parley/contracts';
import { accessibleAttachment, usableAttachments } from './attachments/queries.js';
import { AppError } from '@parley/http';
import { markRead } from './receipts/mark-read.js';
import type { Logger } from '@parley/log';
import type { Pool } from '@parley/pg';
import type { AttachmentStore } from '@parley/storage';
import { retentionPreview, sweepOrphanFiles } from './retention.js';
import { isMember, memberChatsAt, membershipAt, socketSetupsOf } from './chats/queries.js';
import { exportUserData } from './export.js';
import { lookupMessage } from './messages/lookup.js';
import { findByClientMsgIds } from './messages/queries.js';
import { redeleteMessages } from './messages/edit.js';
import { erasedMessagesIn } from './ledger.js';
import type { ChatWriter } from '@parley/chat-writer';
import type { Cache } from '@parley/cache';


/** The route whose signed request is the proof messages.export needs (api.md). */
const EXPORT_PATH = '/api/v1/users/me/export';

/**
 * Internal request/reply methods the messages service answers (contracts RPC_SCHEMAS). Each
 * request has passed its schema before it gets here (serveRpc).
 */
export function messagesRpc(
  pool: Pool,
  deps: {
    bus: Bus;
    namespace: string;
    log: Logger;
    store: AttachmentStore;
    writer: ChatWriter;
    cache: Cache;
    barrier: () => Promise<unknown>;
    attachmentsBarrier: (streamSeq: number) => Promise<boolean>;
    verifier: RequestVerifier;
  },
): RpcHandlers<'messages'> {
  return {
    ping: async () => ({ ok: true }),
    memberships: (req) => memberChatsAt(pool, req.userId),
    socketSetups: async (req) => ({ users: await socketSetupsOf(pool, req.userIds) }),
    isMember: (req) => membershipAt(pool, req.chatId, req.userId),
    messageChat: async (req) => {
      const message = await lookupMessage({ pool, barrier: deps.barrier }, req.messageId);
      // Only reveal the chat to one of its members, and only for a message still there: a reply
      // to a deleted one was accepted (its tombstone is still a row; api.md: not visible).
      return { chatId: message && !message.deleted_at && (await isMember(pool, message.chat_id, req.userId)) ? message.chat_id : null };
    },
    registerAttachment: async (req) => {
      const event: AttachmentUploaded = {
        type: 'AttachmentUploaded',
        version: 1,
        data: { attachmentId: req.attachmentId, uploaderId: req.uploaderId, name: req.name, size: req.size, mime: req.mime },
        meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: req.uploaderId, correlationId: newId() }),
      };
      const ack = await publishEvent(deps.bus.js, subjects.attachment(deps.namespace, req.attachmentId), event, { msgId: `attachment:${req.attachmentId}` });
      await deps.attachmentsBarrier(ack.seq);
      return { id: req.attachmentId, name: req.name, size: req.size, mime: req.mime };
    },
    attachmentAccess: async (req) => {
      // Read-your-writes (issue 22): a member who got the message live asks at once, often before
      // the chats projection has applied it (404 for a few ms). A miss waits for the projection to
      // catch up with the stream, then asks again; only then is it "no such file" for this user.
      const found = await accessibleAttachment(pool, req.attachmentId, req.userId);
      if (found) return found;
      await deps.barrier();
      return accessibleAttachment(pool, req.attachmentId, req.userId);
    },
    pendingUploads: async (req) => {
      const { rows } = await pool.query<{ bytes: string; files: string }>(
        `SELECT COALESCE(sum(a.size), 0) AS bytes, count(*) AS files FROM messages.attachments a
          WHERE a.uploader_id = $1 AND NOT EXISTS (SELECT 1 FROM messages.message_attachments ma WHERE ma.attachment_id = a.id)`,
        [req.userId],
      );
      return { bytes: Number(rows[0]!.bytes), files: Number(rows[0]!.files) };
    },
    attachmentsUsable: async (req) => {
      const attachments = await usableAttachments(pool, req.attachmentIds, req.userId);
      return attachments ? { usable: true, attachments } : { usable: false, attachments: [] };
    },
    export: async (req) => {
      // Only for the user whose own export request the gateway signed (users passes it on).
      const { problem, payload } = deps.verifier.checkProof(req.proof ?? undefined, subjects.api(deps.namespace, 'users'));
      const asked = payload as { method?: unknown; path?: unknown; auth?: { userId?: unknown } | null } | null;
      // The path as the users service's router matched it: one trailing slash is the same route
      // (it answered 500 for `/users/me/export/`, this refusal taken for a failure).
      const path = typeof asked?.path === 'string' ? asked.path.replace(/\/$/, '') : null;
      if (problem || asked?.method !== 'GET' || path !== EXPORT_PATH || asked.auth?.userId !== req.userId) {
        deps.log.warn({ problem: problem ?? 'not an export request of this user' }, 'messages.export refused');
        throw new RequestRefusedError('messages.export needs the user\'s signed export request');
      }
      return exportUserData(pool, req.userId);
    },
    sentMessages: async (req) => ({ found: await findByClientMsgIds(pool, req.sends) }),
    /** The WebSocket `read` frame, forwarded by the gateway. */
    markRead: async (req) => {
      try {
        return { ok: true, seq: await markRead({ ...deps, pool }, req.userId, req.chatId, req.messageId, newId()) };
      } catch (error) {
        if (error instanceof AppError) return { ok: false, code: error.code };
        throw error;
      }
    },
    redelete: async (req) => {
      // Only messages the erasure ledger names (written by users and messages alone): the ledger
      // is the proof, so retention's credentials cannot delete anybody's messages.
      const ids = await erasedMessagesIn(deps, req.messageIds);
      return { deleted: ids.length === 0 ? 0 : await redeleteMessages({ pool, writer: deps.writer, cache: deps.cache }, ids) };
    },
    retentionPreview: (req) => retentionPreview(pool, req),
    retentionBacklog: async () => {
      const { rows } = await pool.query<{ n: number }>(
        `SELECT (SELECT count(*) FROM messages.stream_deletions) + (SELECT count(*) FROM messages.released_attachments)
              + (SELECT count(*) FROM messages.file_deletions) AS n`,
      );
      return { pending: Number(rows[0]!.n) };
    },
    sweepFiles: async (req) => ({ deleted: await sweepOrphanFiles(pool, deps.store, new Date(req.olderThan), deps.log) }),
    attachmentsKept: async (req) => {
      const { rows } = await pool.query<{ attachment_id: string }>(
        `SELECT DISTINCT ma.attachment_id FROM messages.message_attachments ma JOIN messages.messages m ON m.id = ma.message_id
          WHERE ma.attachment_id = ANY($1::uuid[]) AND m.stream_seq >= $2 AND m.deleted_at IS NULL`,
        [req.attachmentIds, req.fromStreamSeq],
      );
      return { kept: rows.map((r) => r.attachment_id) };
    },
  };
}
