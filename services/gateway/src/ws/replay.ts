import { memberRemovedBy, membersAddedBy, toClientEvent, type ChatEvent } from '@parley/contracts';
import type { ChatDelivery } from './delivery.js';
import type { Socket } from './registry.js';

/**
 * Sends a socket a chat's events read from the stream, as its user may see them: a removal of the
 * user is sent, then nothing more of the chat unless an event adds them again. Used by a resume
 * and by a catch-up after a notice (connection.ts, fanout.ts), whose replays can both reach past a
 * removal the live fan-out has not applied yet. `member`: whether the user is in the chat after
 * the events; the caller leaves or joins accordingly.
 */
export function replayTo(delivery: ChatDelivery, socket: Socket, chatId: string, userId: string, events: readonly ChatEvent[]): { sent: number; member: boolean } {
  let sent = 0;
  let member = true;
  for (const event of events) {
    if (membersAddedBy(event).includes(userId)) member = true;
    if (member && delivery.sendNow(socket, chatId, event.seq, JSON.stringify(toClientEvent(event)))) sent += 1;
    if (memberRemovedBy(event) === userId) member = false;
  }
  return { sent, member };
}

/** Users whom `events` leave removed. */
export function removedIn(events: readonly ChatEvent[]): Set<string> {
  return new Set([...membershipAfter(events)].flatMap(([userId, member]) => (member ? [] : [userId])));
}

/** Whether each user the events add or remove is a member after them (the last of their changes). */
export function membershipAfter(events: readonly ChatEvent[]): Map<string, boolean> {
  const member = new Map<string, boolean>();
  for (const event of events) {
    for (const userId of membersAddedBy(event)) member.set(userId, true);
    const removed = memberRemovedBy(event);
    if (removed) member.set(removed, false);
  }
  return member;
}
