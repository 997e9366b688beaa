import type { ChatEvent, EventMeta, MessageSent, PollPosted } from '@parley/contracts';
import { decide, type ChatCommand, type Refusal } from './decide.js';
import { fold, type ChatState } from './state.js';

/** Why nothing was appended: refused, or decided with no event (already so: closing a closed poll). */
export type NotAppended = Refusal | { ok: true; events: [] };

/**
 * One decision as the chat writer takes it (Sequencer.appendDecided): the caller's state, the
 * events stored since it, and the seq the new event takes. Pure, and run again whenever another
 * writer appended first. Every chat command decides at most one event.
 */
export function decideAppend(
  chatId: string,
  command: ChatCommand,
  basis: ChatState,
  newer: readonly { type: string; seq: number }[],
  seq: number,
  meta: EventMeta,
): { event: ChatEvent } | { refusal: NotAppended } {
  const state = fold(basis, newer as ChatEvent[]);
  const decision = decide(command, state);
  if (!decision.ok) return { refusal: decision };
  const [only, ...more] = decision.events;
  if (more.length > 0) throw new Error(`${command.type} decided ${decision.events.length} events; the writer appends one`);
  if (!only) return { refusal: { ok: true, events: [] } };
  return { event: { type: only.type, version: 1, chatId, seq, data: only.data, meta } as ChatEvent };
}

/** Why a lost message is not appended again (decideRepair). */
export type NotRepaired = 'repaired' | 'resent' | 'erased' | 'expired';

/** A message event the store lost the seq of (two events with one chat seq: docs/reliability.md). */
export type LostMessage = MessageSent | PollPosted;

/**
 * The repair of a lost message (the seq-repair reactor): the same event again under the chat's
 * next seq. Not a new decision: the message was decided and acknowledged at its own seq, so
 * nothing about it is checked again (a sender who left since, a reply target deleted since, still
 * get it appended). `data` is the lost event's own; the meta keeps its time, actor and correlation,
 * with a new event id whose cause is the lost copy. No event when the chat's events after the lost
 * seq already hold it (an earlier repair whose queue row outlived its append, or a replay) or the
 * sender's resend of its clientMsgId as another message (past JetStream's duplicate window), when
 * the sender was erased with their content since, or when retention expired the chat past it.
 */
export function decideRepair(
  lost: LostMessage,
  newer: readonly { type: string; seq: number }[],
  seq: number,
  eventId: string,
): { event: LostMessage } | { refusal: NotRepaired } {
  const done = (reason: NotRepaired) => ({ refusal: reason });
  for (const event of newer as ChatEvent[]) {
    if (event.type === 'MessageSent' || event.type === 'PollPosted') {
      if (event.data.messageId === lost.data.messageId) return done('repaired');
      // The sender sent it again past JetStream's duplicate window, as another message: it is in history.
      if (event.data.senderId === lost.data.senderId && event.data.clientMsgId === lost.data.clientMsgId) return done('resent');
    }
    if (event.type === 'MemberErased' && event.data.purged && event.data.userId === lost.data.senderId) return done('erased');
    if (event.type === 'MessagesExpired' && event.data.upToSeq >= lost.seq) return done('expired');
  }
  return { event: { ...lost, seq, meta: { ...lost.meta, eventId, causationId: lost.meta.eventId } } };
}

/**
 * The message a send or poll command already stored, among a chat's events after its first copy
 * (`events`): the first of the sender's with the command's clientMsgId (the seq repair's copy
 * keeps both). A resend that JetStream answers "duplicate" after the seq repair deleted the first
 * copy (ChatWriter.execute) is acknowledged with it, the same message as every earlier answer;
 * null for any other command, or when no copy is there.
 */
export function storedCopy<E extends { type: string }>(command: ChatCommand, events: readonly E[]): E | null {
  if (command.type !== 'SendMessage' && command.type !== 'PostPoll') return null;
  for (const event of events as unknown as ChatEvent[]) {
    if ((event.type === 'MessageSent' || event.type === 'PollPosted') && event.data.senderId === command.actorId && event.data.clientMsgId === command.data.clientMsgId) {
      return event as unknown as E;
    }
  }
  return null;
}
