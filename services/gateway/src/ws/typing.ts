import type { NatsConnection, Subscription } from '@nats-io/transport-node';
import { isId, subjects } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { ChatDelivery } from './delivery.js';

/** Shortest interval between two typing notices of one user in one chat (ms). */
export const TYPING_INTERVAL_MS = 1_000;

/**
 * Typing notices are ephemeral: core NATS (never JetStream, never Postgres), best effort. A user's
 * notices are limited to one per chat per TYPING_INTERVAL_MS on the gateway that receives them;
 * the extra ones are dropped silently (a client that types fast is not an error).
 */
export class Typing {
  private readonly lastSent = new Map<string, number>();
  private sub: Subscription | undefined;

  constructor(
    private readonly deps: { nc: NatsConnection; namespace: string; delivery: ChatDelivery; log: Logger; metrics: Metrics },
  ) {}

  subject(chatId: string): string {
    return subjects.typing(this.deps.namespace, chatId);
  }

  start(): void {
    this.sub = this.deps.nc.subscribe(subjects.allTyping(this.deps.namespace), {
      callback: (err, msg) => {
        if (err) return;
        let notice: { chatId?: unknown; userId?: unknown };
        try {
          notice = msg.json();
        } catch {
          return;
        }
        if (!isId(notice.chatId) || !isId(notice.userId)) return;
        const frame = JSON.stringify({ op: 'typing', chatId: notice.chatId, userId: notice.userId });
        const sent = this.deps.delivery.sendToMembers(notice.chatId, frame, notice.userId);
        if (sent > 0) this.deps.metrics.websocketMessages.inc({ direction: 'out', op: 'typing' }, sent);
      },
    });
  }

  /** Publishes a notice unless this user sent one for this chat very recently. */
  notify(chatId: string, userId: string, now = Date.now()): void {
    const key = `${userId}:${chatId}`;
    const last = this.lastSent.get(key) ?? 0;
    if (now - last < TYPING_INTERVAL_MS) return;
    this.lastSent.set(key, now);
    if (this.lastSent.size > 100_000) this.prune(now);
    this.deps.nc.publish(this.subject(chatId), JSON.stringify({ chatId, userId }));
  }

  /**
   * The user sent a message to the chat: that ends their typing (clients stop showing it), so their
   * next notice must not be dropped as too soon after the last one.
   */
  sent(chatId: string, userId: string): void {
    this.lastSent.delete(`${userId}:${chatId}`);
  }

  private prune(now: number): void {
    for (const [key, at] of this.lastSent) if (now - at >= TYPING_INTERVAL_MS) this.lastSent.delete(key);
  }

  async stop(): Promise<void> {
    await this.sub?.drain().catch(() => {});
  }
}
