/**
 * The history checker (issue 10): records every send, ack and delivery of every client while a
 * scenario injects its faults, and once they have healed checks the promises of docs/architecture.md against
 * the server's final history. It decides nothing from timing; only from what each side saw.
 *
 * Bodies carry their clientMsgId (`<clientMsgId> <padding>`), so any message anywhere (a frame, a
 * history page) can be traced back to the send that produced it, or shown to come from nowhere.
 */

export interface Send {
  clientMsgId: string;
  chatId: string;
  client: string;
  body: string;
}

export interface Ack {
  messageId: string;
  seq: number;
}

/** A message as a client received it (live event, resume, or a history reload after `reset`). */
export interface Delivery {
  chatId: string;
  seq: number;
  messageId: string;
  body: string;
  via: 'live' | 'reload';
}

/** A chat's final history on the server, oldest first. */
export interface StoredMessage {
  id: string;
  seq: number;
  body: string;
}

export interface Verdict {
  violations: string[];
  stats: {
    sends: number;
    acked: number;
    /** Acks whose seq the store gave another message too, the message then appended again under a later one. */
    repaired: number;
    /** Sends the server answered with an error at least once (before a retry got them in). */
    erroredSends: number;
    deliveries: number;
    reloads: number;
    stored: number;
  };
}

export const bodyFor = (clientMsgId: string, padding: string) => `${clientMsgId} ${padding}`;
export const clientMsgIdOf = (body: string) => body.split(' ', 1)[0]!;

export class History {
  private readonly sends = new Map<string, Send>();
  private readonly acks = new Map<string, Ack>();
  private readonly conflicts: string[] = [];
  private readonly errored = new Set<string>();
  /** client → chat → deliveries in arrival order. */
  private readonly deliveries = new Map<string, Map<string, Delivery[]>>();
  /** client → chat → the seq the client started from (its cursor when the load began). */
  private readonly starts = new Map<string, Map<string, number>>();
  private readonly notes: string[] = [];
  /** Acked messages a retention pass was told to delete: they must be gone, not "lost". */
  private readonly expired = new Set<string>();
  /** clientMsgId → every seq its acks named. */
  private readonly ackedSeqs = new Map<string, Set<number>>();

  recordStart(client: string, chatId: string, seq: number): void {
    mapOf(this.starts, client).set(chatId, seq);
  }

  recordSend(send: Send): void {
    const earlier = this.sends.get(send.clientMsgId);
    if (earlier && (earlier.chatId !== send.chatId || earlier.body !== send.body)) {
      throw new Error(`test bug: clientMsgId ${send.clientMsgId} reused for another message`);
    }
    this.sends.set(send.clientMsgId, send);
  }

  /**
   * Every ack of one clientMsgId (first send, retries, other gateways) must name the same message.
   * Its seq may differ only for a message the store lost the seq of and the seq repair appended
   * again (a retry answered from history names the new seq): check() verifies every acked seq.
   */
  recordAck(clientMsgId: string, ack: Ack): void {
    if (!this.sends.has(clientMsgId)) this.conflicts.push(`ack for ${clientMsgId}, which was never sent`);
    const earlier = this.acks.get(clientMsgId);
    if (earlier && earlier.messageId !== ack.messageId) {
      this.conflicts.push(`${clientMsgId} acked twice as different messages: ${JSON.stringify(earlier)} and ${JSON.stringify(ack)}`);
    }
    setOf(this.ackedSeqs, clientMsgId).add(ack.seq);
    if (!earlier) this.acks.set(clientMsgId, ack);
  }

  recordError(clientMsgId: string, code: string): void {
    this.errored.add(clientMsgId);
    if (code !== 'unavailable' && code !== 'rate_limited') this.notes.push(`${clientMsgId}: unexpected error ${code}`);
  }

  recordDelivery(client: string, delivery: Delivery): void {
    const perChat = mapOf(this.deliveries, client);
    const list = perChat.get(delivery.chatId) ?? [];
    list.push(delivery);
    perChat.set(delivery.chatId, list);
  }

  get acked(): number {
    return this.acks.size;
  }

  get sent(): number {
    return this.sends.size;
  }

  /** Marks every message acked so far as expired (the scenario runs retention with that cutoff). */
  expireAcked(): number {
    for (const clientMsgId of this.acks.keys()) this.expired.add(clientMsgId);
    return this.expired.size;
  }

  /** The highest seq acknowledged in `chatId` (0 if none): history must reach at least that far. */
  maxAckedSeq(chatId: string): number {
    let max = 0;
    for (const [clientMsgId, ack] of this.acks) if (this.sends.get(clientMsgId)?.chatId === chatId) max = Math.max(max, ack.seq);
    return max;
  }

  /**
   * How many messages acknowledged in `chatId` (and not expired) `messages` lacks. A message whose
   * seq the store gave another one reaches history only when the seq repair has appended it again,
   * at a seq above every ack: reaching the highest acked seq does not mean that history has it.
   */
  ackedMissing(chatId: string, messages: readonly StoredMessage[]): number {
    const ids = new Set(messages.map((m) => m.id));
    let missing = 0;
    for (const [clientMsgId, ack] of this.acks) {
      if (this.sends.get(clientMsgId)?.chatId === chatId && !this.expired.has(clientMsgId) && !ids.has(ack.messageId)) missing += 1;
    }
    return missing;
  }

  /** Sends not acknowledged (yet): a client still holds them in its outbox. */
  unacked(): Send[] {
    return [...this.sends.values()].filter((s) => !this.acks.has(s.clientMsgId));
  }

  /**
   * The checks, once faults have healed and every client has caught up. `stored` is each chat's
   * final history from the server; `members` which clients belong to which chat.
   */
  check(stored: Map<string, StoredMessage[]>, members: Map<string, string[]>): Verdict {
    const violations = [...this.conflicts, ...this.notes];
    const storedByClientMsgId = new Map<string, { chatId: string; message: StoredMessage }>();

    for (const [chatId, messages] of stored) {
      let previous = 0;
      for (const message of messages) {
        if (message.seq <= previous) violations.push(`chat ${chatId}: history out of order at seq ${message.seq} (after ${previous})`);
        previous = message.seq;
        const clientMsgId = clientMsgIdOf(message.body);
        const send = this.sends.get(clientMsgId);
        if (this.expired.has(clientMsgId)) violations.push(`chat ${chatId}: ${clientMsgId} (seq ${message.seq}) expired but is still in history`);
        // Nothing stored that was never sent...
        if (!send) violations.push(`chat ${chatId}: stored message ${message.id} (seq ${message.seq}) was never sent`);
        else if (send.chatId !== chatId || send.body !== message.body) violations.push(`chat ${chatId}: stored message ${message.id} does not match send ${clientMsgId}`);
        // ...nor stored twice.
        if (storedByClientMsgId.has(clientMsgId)) violations.push(`chat ${chatId}: ${clientMsgId} stored twice (seq ${storedByClientMsgId.get(clientMsgId)!.message.seq} and ${message.seq})`);
        storedByClientMsgId.set(clientMsgId, { chatId, message });
      }
    }

    // No acknowledged message lost, and the ack named the message that was stored: at its seq, or
    // (a message the store gave a used seq: docs/reliability.md) at a later one after a repair,
    // the acked seq holding the message that kept it.
    let repaired = 0;
    for (const [clientMsgId, ack] of this.acks) {
      if (this.expired.has(clientMsgId)) continue;
      const found = storedByClientMsgId.get(clientMsgId);
      if (!found) {
        violations.push(`acked ${clientMsgId} (seq ${ack.seq}) is missing from history`);
        continue;
      }
      if (found.message.id !== ack.messageId) violations.push(`acked ${clientMsgId} as ${ack.messageId}/${ack.seq}, stored as ${found.message.id}/${found.message.seq}`);
      for (const seq of this.ackedSeqs.get(clientMsgId) ?? [ack.seq]) {
        if (seq === found.message.seq) continue;
        const holder = stored.get(found.chatId)?.find((m) => m.seq === seq);
        if (seq < found.message.seq && holder && holder.id !== found.message.id) repaired += 1;
        else violations.push(`acked ${clientMsgId} as ${ack.messageId}/${seq}, stored as ${found.message.id}/${found.message.seq}`);
      }
    }
    // History equals what was acknowledged: the clients retried until every send was acked.
    for (const clientMsgId of storedByClientMsgId.keys()) {
      if (this.sends.has(clientMsgId) && !this.acks.has(clientMsgId)) violations.push(`stored ${clientMsgId} was never acknowledged to its sender`);
    }
    for (const send of this.unacked()) violations.push(`${send.clientMsgId} to chat ${send.chatId} never acknowledged (the client gave up waiting)`);

    // Expired messages were delivered while they lived; history no longer has them.
    const expiredSeqs = new Map<string, Set<number>>();
    for (const clientMsgId of this.expired) {
      const chatId = this.sends.get(clientMsgId)?.chatId;
      const ack = this.acks.get(clientMsgId);
      if (chatId && ack) setOf(expiredSeqs, chatId).add(ack.seq);
    }

    // Per member, per chat: every message after its starting point, each once, in seq order.
    let deliveryCount = 0;
    let reloads = 0;
    for (const [chatId, clients] of members) {
      const messages = stored.get(chatId) ?? [];
      for (const client of clients) {
        const start = this.starts.get(client)?.get(chatId) ?? 0;
        const got = this.deliveries.get(client)?.get(chatId) ?? [];
        deliveryCount += got.length;
        reloads += got.filter((d) => d.via === 'reload').length;
        let previous = start;
        const seen = new Set<number>();
        for (const delivery of got) {
          if (seen.has(delivery.seq)) violations.push(`${client} got chat ${chatId} seq ${delivery.seq} twice`);
          else if (delivery.via === 'live' && delivery.seq <= previous) violations.push(`${client} got chat ${chatId} seq ${delivery.seq} after seq ${previous}`);
          seen.add(delivery.seq);
          previous = Math.max(previous, delivery.seq);
          const send = this.sends.get(clientMsgIdOf(delivery.body));
          if (!send || send.chatId !== chatId) violations.push(`${client} got a message that was never sent to chat ${chatId}: seq ${delivery.seq}`);
        }
        const expected = messages.filter((m) => m.seq > start);
        const missing = expected.filter((m) => !seen.has(m.seq));
        if (missing.length > 0) {
          // Which seqs, and how each of the rest arrived (live or by a reload after reset): where a hole is says what made it.
          const via = (seq: number) => got.find((d) => d.seq === seq)?.via ?? '-';
          const around = [missing[0]!.seq - 1, missing.at(-1)!.seq + 1].map((seq) => `${seq}:${via(seq)}`).join(' ');
          violations.push(`${client} never got ${missing.length} message(s) of chat ${chatId}, first seq ${missing[0]!.seq} (seqs ${missing.slice(0, 20).map((m) => m.seq).join(',')}${missing.length > 20 ? ',…' : ''}; neighbours ${around})`);
        }
        const gone = expiredSeqs.get(chatId);
        const extra = [...seen].filter((seq) => !gone?.has(seq) && !expected.some((m) => m.seq === seq));
        if (extra.length > 0) violations.push(`${client} got seq(s) ${extra.slice(0, 5).join(', ')} of chat ${chatId} that history does not have`);
      }
    }

    return {
      violations,
      stats: {
        sends: this.sends.size,
        acked: this.acks.size,
        erroredSends: this.errored.size,
        deliveries: deliveryCount,
        reloads,
        stored: [...stored.values()].reduce((n, list) => n + list.length, 0),
        repaired,
      },
    };
  }
}

function mapOf<K, V>(outer: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let inner = outer.get(key);
  if (!inner) outer.set(key, (inner = new Map()));
  return inner;
}

function setOf<V>(outer: Map<string, Set<V>>, key: string): Set<V> {
  let inner = outer.get(key);
  if (!inner) outer.set(key, (inner = new Set()));
  return inner;
}
