import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { Bus } from '@parley/bus';
import { membersAddedBy, parseChatEvent, streamName, subjects } from '@parley/contracts';
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
    },
  });
  return {
    async stop() {
      await messages.close().catch(() => {});
    },
  };
}
