import type { ChatEvent, EventMeta } from '@parley/contracts';
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
