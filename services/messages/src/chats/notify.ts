import type { Bus } from '@parley/bus';
import { subjects } from '@parley/contracts';

/**
 * Tells the gateways of users just added to a chat (created with them, or added later) to start
 * following it: live chat events only reach gateways subscribed to the chat's subject, and a
 * gateway subscribes for the chats of the users it holds. The notice carries the seq of the event
 * that added them; the gateway reads from there, so nothing between the notice and its
 * subscription is missed.
 */
export function notifyNewMembers(bus: Bus, namespace: string, chatId: string, seq: number, userIds: string[]): void {
  const notice = JSON.stringify({ chatId, seq, userIds });
  for (const userId of userIds) bus.nc.publish(subjects.inbox(namespace, userId), notice);
}
