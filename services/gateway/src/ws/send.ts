import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { callRpc, type Bus } from '@parley/bus';
import type { ChatCommand } from '@parley/chat-domain';
import { senderBasis, type ChatWriter } from '@parley/chat-writer';
import { messageBodyProblem, newId, sendMessageId, type MessageSent, type RpcMethods } from '@parley/contracts';
import type { LiveFanout } from './fanout.js';
import type { ResendCheck } from './resend-check.js';
import type { Socket, SocketRegistry } from './registry.js';

export interface SendDeps {
  bus: Bus;
  /** What the gateway knows of each chat's members, as of which seq (LiveFanout). */
  basis: Pick<LiveFanout, 'basisOf' | 'joinAfter'>;
  namespace: string;
  writer: ChatWriter;
  maxChars: number;
  serviceTimeoutMs: number;
  /** Recognises a resend of a send stored before (a young connection's first sends). */
  resendCheck: ResendCheck;
  registry: SocketRegistry;
}

export interface SendFrameInput {
  chatId: string;
  clientMsgId: string;
  body: string;
  replyTo?: string | null | undefined;
  attachmentIds?: string[] | undefined;
}

export type SendOutcome =
  | { ok: true; messageId: string; seq: number }
  | { ok: false; code: string; message: string };

/**
 * The WebSocket `send`: authorize against the chats this socket is subscribed to (asking the
 * messages service only for a chat it does not know yet), validate, then append `MessageSent`
 * with the chat's next seq. Resolves only once JetStream has stored the event (or had stored it:
 * a retry with the same clientMsgId gets the original's id and seq).
 */
export function handleSend(deps: SendDeps, socket: Socket, userId: string, frame: SendFrameInput): Promise<SendOutcome> {
  // The root of a message's trace: the publish, the projector and the Postgres insert follow it
  // through the NATS headers (docs/architecture.md#promises). Ids only as attributes, never the body.
  return tracer.startActiveSpan('ws send', { kind: SpanKind.SERVER, attributes: { 'parley.chat_id': frame.chatId } }, async (span) => {
    try {
      const outcome = await sendNow(deps, socket, userId, frame);
      if (outcome.ok) span.setAttribute('parley.message_id', outcome.messageId);
      else span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.code });
      return outcome;
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).name });
      throw error;
    } finally {
      span.end();
    }
  });
}

const tracer = trace.getTracer('parley-gateway');

async function sendNow(deps: SendDeps, socket: Socket, userId: string, frame: SendFrameInput): Promise<SendOutcome> {
  const { chatId } = frame;
  let basis = socket.getUserData().state.chats.has(chatId) ? deps.basis.basisOf(chatId) : undefined;
  if (basis === undefined) {
    const { member, seq } = await callRpc(deps.bus, deps.namespace, 'messages.isMember', { chatId, userId }, deps.serviceTimeoutMs);
    // Same answer for "no such chat" and "not a member": nothing leaks about chats one is not in.
    if (!member) return NO_CHAT;
    // A member as of the projection's seq, which may trail a removal this gateway has applied
    // already: the send is decided from there, never from the gateway's newer position (which
    // would skip the removal), and the sockets join through the chat's events since, which
    // include any removal (e2e/write-model.test.ts).
    basis = seq;
    deps.basis.joinAfter(chatId, [...deps.registry.socketsOf(userId)].filter((own) => !own.getUserData().state.chats.has(chatId)), seq);
  }
  // A client resends what it never saw acked as the first frames after reconnecting. Within
  // JetStream's dedup window the publish below answers with the original; past it, only the
  // projection knows (resend-check.ts says which sends are looked up there).
  const earlier = await deps.resendCheck.earlier(socket.getUserData().state, { chatId, senderId: userId, clientMsgId: frame.clientMsgId });
  if (earlier) return { ok: true, messageId: earlier.messageId, seq: earlier.seq };
  const attachmentIds = frame.attachmentIds ?? [];
  const problem = messageBodyProblem(frame.body, deps.maxChars, attachmentIds.length > 0);
  if (problem) return { ok: false, code: 'invalid_request', message: problem };
  let attachments: RpcMethods['messages.attachmentsUsable']['res']['attachments'] = [];
  if (attachmentIds.length > 0) {
    const usable = await callRpc(deps.bus, deps.namespace, 'messages.attachmentsUsable', { attachmentIds, userId }, deps.serviceTimeoutMs);
    if (!usable.usable) return { ok: false, code: 'invalid_request', message: 'Unknown attachment' };
    attachments = usable.attachments;
  }
  const replyTo = frame.replyTo ?? null;
  if (replyTo) {
    const { chatId: targetChat } = await callRpc(deps.bus, deps.namespace, 'messages.messageChat', { messageId: replyTo, userId }, deps.serviceTimeoutMs);
    if (targetChat !== chatId) return { ok: false, code: 'invalid_request', message: 'replyTo must be a message of the same chat' };
  }
  // Decided by the chat decider against what this gateway knew of the chat when it checked the
  // sender (basisOf) plus every event stored since, and decided again if another writer appends
  // first: a member removed meanwhile is refused, never appended after their removal (issue 17).
  const command: ChatCommand = {
    type: 'SendMessage',
    actorId: userId,
    data: { messageId: newId(), clientMsgId: frame.clientMsgId, body: frame.body, replyTo, attachmentIds, ...(attachments.length > 0 ? { attachments } : {}) },
  };
  const appended = await deps.writer.execute(chatId, command, senderBasis(userId, basis, replyTo), {
    msgId: sendMessageId(chatId, userId, frame.clientMsgId),
    actorId: userId,
  });
  if ('refusal' in appended) return appended.refusal.ok ? NO_CHAT : { ok: false, code: appended.refusal.code, message: appended.refusal.message };
  const event = appended.event as MessageSent;
  return { ok: true, messageId: event.data.messageId, seq: event.seq };
}

const NO_CHAT: SendOutcome = { ok: false, code: 'not_found', message: 'No such chat' };
