import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { TemplatedApp } from 'uWebSockets.js';
import type { Bus } from '@parley/bus';
import { membersAddedBy, parseChatEvent, streamName, subjects, toClientEvent } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { chatTopic, type SocketRegistry } from './registry.js';

/**
 * Live delivery: an ordered consumer on the chats stream (only events JetStream has stored, never
 * a publish it refused) turned into `event` frames on each chat's uWS topic. Each gateway reads
 * the chat events from the moment it starts; the client's `resume` covers anything before that.
 */
export async function startFanout(deps: {
  app: TemplatedApp;
  bus: Bus;
  namespace: string;
  registry: SocketRegistry;
  log: Logger;
  metrics: Metrics;
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
      const topic = chatTopic(event.chatId);
      // New members start receiving the chat with the event that made them members.
      for (const userId of membersAddedBy(event)) {
        for (const socket of deps.registry.socketsOf(userId)) socket.subscribe(topic);
      }
      const delivered = deps.app.numSubscribers(topic);
      if (delivered > 0) {
        deps.app.publish(topic, JSON.stringify(toClientEvent(event)), false);
        deps.metrics.websocketMessages.inc({ direction: 'out', op: 'event' }, delivered);
      }
    },
  });
  return {
    async stop() {
      await messages.close().catch(() => {});
    },
  };
}
