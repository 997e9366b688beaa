import { callRpc, endOfTurn, type Bus } from '@parley/bus';
import { MAX_SENT_LOOKUPS } from '@parley/contracts';

export interface SendKey {
  chatId: string;
  senderId: string;
  clientMsgId: string;
}

export interface EarlierSend {
  messageId: string;
  seq: number;
}

/**
 * Asks the messages service whether a send was stored before (a client resending after a
 * reconnect, past JetStream's dedup window). The first sends of every connection are checked, so
 * with many fresh connections this is one lookup per message: the checks made in one event-loop
 * turn go as one request and one SQL statement instead of one each.
 *
 * Best effort, as before: a failed lookup answers null (not stored) for every send in it.
 */
export class ResendCheck {
  private batch: { keys: SendKey[]; answers: ((found: EarlierSend | null) => void)[] } | undefined;

  constructor(private readonly deps: { bus: Bus; namespace: string; timeoutMs: number }) {}

  earlier(key: SendKey): Promise<EarlierSend | null> {
    if (!this.batch || this.batch.keys.length >= MAX_SENT_LOOKUPS) {
      const batch = { keys: [] as SendKey[], answers: [] as ((found: EarlierSend | null) => void)[] };
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

  private async ask(batch: { keys: SendKey[]; answers: ((found: EarlierSend | null) => void)[] }): Promise<void> {
    const found = await callRpc(this.deps.bus.nc, this.deps.namespace, 'messages.sentMessages', { sends: batch.keys }, this.deps.timeoutMs)
      .then((answer) => answer.found)
      .catch(() => []);
    batch.answers.forEach((answer, i) => answer(found[i] ?? null));
  }
}
