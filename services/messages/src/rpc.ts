import type { Bus } from '@parley/bus';
import { isId, newId, type RpcMethods } from '@parley/contracts';
import { AppError } from '@parley/http';
import { markRead } from './receipts/mark-read.js';
import type { Pool } from '@parley/pg';
import { isMember, memberChatIds } from './chats/queries.js';
import { lookupMessage } from './messages/lookup.js';


type Req<M extends keyof RpcMethods> = Partial<RpcMethods[M]['req']> | null;
type Res<M extends keyof RpcMethods> = Promise<RpcMethods[M]['res']>;

/** Internal request/reply methods the messages service answers (contracts RpcMethods). */
export function messagesRpc(pool: Pool, deps: { bus: Bus; namespace: string; barrier: () => Promise<unknown> }) {
  return {
    memberships: async (req: Req<'messages.memberships'>): Res<'messages.memberships'> => ({
      chatIds: isId(req?.userId) ? await memberChatIds(pool, req.userId) : [],
    }),
    isMember: async (req: Req<'messages.isMember'>): Res<'messages.isMember'> => ({
      member: isId(req?.chatId) && isId(req?.userId) ? await isMember(pool, req.chatId, req.userId) : false,
    }),
    messageChat: async (req: Req<'messages.messageChat'>): Res<'messages.messageChat'> => {
      if (!isId(req?.messageId) || !isId(req?.userId)) return { chatId: null };
      const message = await lookupMessage({ pool, barrier: deps.barrier }, req.messageId);
      // Only reveal the chat to one of its members.
      return { chatId: message && (await isMember(pool, message.chat_id, req.userId)) ? message.chat_id : null };
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
  };
}
