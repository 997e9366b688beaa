import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { Bus } from '@parley/bus';
import { memberRemovedBy, membersAddedBy, parseChatEvent, parseReceiptEvent, streamName, subjects } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { ChatDelivery } from './delivery.js';
import type { SocketRegistry } from './registry.js';

/**
 * Live delivery: an ordered consumer on the chats stream (only events JetStream has stored, never
 * a publish it refused, and gap-free: the client library recreates the consumer on a gap) handed
 * to ChatDelivery. Each gateway reads chat events from the moment it starts; a client's `resume`
 * covers anything before that.
 *
 * Known limit (docs/decisions.md): every gateway reads every chat event, also for chats with no
 * local member; it drops those after a Map lookup.
 */
export async function startFanout(deps: {
  bus: Bus;
  namespace: string;
  registry: SocketRegistry;
  delivery: ChatDelivery;
  log: Logger;
}): Promise<{ stop(): Promise<void> }> {
  const consumer = await deps.bus.js.consumers.get(streamName(deps.namespace, 'chats'), {
    filter_subjects: subjects.allChats(deps.namespace),
    deliver_policy: DeliverPolicy.New,
  });
  const messages: ConsumerMessages = await consumer.consume({
    callback: (msg) => {
      let value: unknown;
      try {
        value = msg.json();
      } catch {
        deps.log.error({ streamSeq: msg.seq }, 'undecodable chat event skipped by fan-out');
        return;
      }
      const parsed = parseChatEvent(value);
      if (!parsed.ok) {
        deps.log.error({ streamSeq: msg.seq, reason: parsed.reason }, 'invalid chat event skipped by fan-out');
        return;
      }
      const event = parsed.event;
      // New members start receiving the chat with the event that made them members.
      for (const userId of membersAddedBy(event)) {
        for (const socket of deps.registry.socketsOf(userId)) deps.delivery.join(socket, event.chatId);
      }
      deps.delivery.publish(event);
      // A removed member gets the removal itself, then nothing more from this chat.
      const removed = memberRemovedBy(event);
      if (removed) for (const socket of deps.registry.socketsOf(removed)) deps.delivery.leave(socket, event.chatId);
    },
  });
  // Read positions come from their own stream (no chat seq): forwarded to the chat's members as
  // `read.updated`, best effort like typing.
  const receiptsConsumer = await deps.bus.js.consumers.get(streamName(deps.namespace, 'receipts'), { deliver_policy: DeliverPolicy.New });
  const receipts = await receiptsConsumer.consume({
    callback: (msg) => {
      try {
        const parsed = parseReceiptEvent(msg.json());
        if (!parsed.ok) return;
        const { chatId, userId, seq } = parsed.event.data;
        const frame = JSON.stringify({ op: 'event', type: 'read.updated', chatId, seq, data: { userId, seq }, at: parsed.event.meta.occurredAt });
        deps.delivery.sendToMembers(chatId, frame, null);
      } catch {
        deps.log.error({ streamSeq: msg.seq }, 'undecodable receipt skipped by fan-out');
      }
    },
  });
  return {
    async stop() {
      await messages.close().catch(() => {});
      await receipts.close().catch(() => {});
    },
  };
}
