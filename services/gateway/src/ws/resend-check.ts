import { callRpcNow, endOfTurn, type Bus } from '@parley/bus';
import { MAX_SENT_LOOKUPS } from '@parley/contracts';
import type { SocketData } from './registry.js';

export interface SendKey {
  chatId: string;
  senderId: string;
  clientMsgId: string;
}

export interface EarlierSend {
  messageId: string;
  seq: number;
}

interface Batch {
  keys: SendKey[];
  answers: ((found: EarlierSend | null) => void)[];
}

/**
 * Finds a send stored before (a client resending after a reconnect, past JetStream's dedup
 * window). A client flushes its outbox at once, so only a connection's first `maxSends` sends
 * made within `windowMs` of authenticating or of `resumed` are looked up: a long-lived
 * connection's sends are all new. The lookups made in one event-loop turn go to the messages
 * service as one request and one SQL statement instead of one each.
 *
 * Best effort: a failed lookup answers null (not stored) for every send in it, and the send goes
 * on; JetStream's dedup window still covers the resends that matter most.
 */
export class ResendCheck {
  private batch: Batch | undefined;

  constructor(private readonly deps: { bus: Bus; namespace: string; timeoutMs: number; maxSends: number; windowMs: number }) {}

  /** Counts a send on `socket`; the original of it if this is a resend, else null. */
  earlier(socket: Pick<SocketData, 'sends' | 'resendWindowFrom'>, key: SendKey): Promise<EarlierSend | null> {
    if (socket.sends++ >= this.deps.maxSends || Date.now() - socket.resendWindowFrom > this.deps.windowMs) return Promise.resolve(null);
    if (!this.batch || this.batch.keys.length >= MAX_SENT_LOOKUPS) {
      const batch: Batch = { keys: [], answers: [] };
      this.batch = batch;
      void endOfTurn().then(() => {
        if (this.batch === batch) this.batch = undefined;
        return this.ask(batch);
      });
    }
    const batch = this.batch;
    return new Promise((resolve) => {
      batch.keys.push(key);
      batch.answers.push(resolve);
    });
  }

  /** Already at the end of the turn, so the request goes now (callRpc would wait another turn). */
  private async ask(batch: Batch): Promise<void> {
    const found = await callRpcNow(this.deps.bus, this.deps.namespace, 'messages.sentMessages', { sends: batch.keys }, this.deps.timeoutMs)
      .then((answer) => answer.found)
      .catch(() => []);
    batch.answers.forEach((answer, i) => answer(found[i] ?? null));
  }
}
