import WebSocket from 'ws';
import { bodyFor, type History, type StoredMessage } from './history.js';
import { sleep } from './servers.js';

/** A registered account, as the scenario's setup made it. */
export interface Account {
  id: string;
  username: string;
  accessToken: string;
}

/** A JSON call to a gateway: `{status, body}`, or status 0 when the gateway cannot be reached. */
export async function api(baseUrl: string, method: string, url: string, token?: string, body?: unknown): Promise<{ status: number; body: any }> {
  try {
    const r = await fetch(baseUrl + url, {
      method,
      headers: { ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body !== undefined ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(15_000),
    });
    return { status: r.status, body: await r.json().catch(() => null) };
  } catch {
    return { status: 0, body: null };
  }
}

/** Every message of a chat, oldest first, paging back through `GET /chats/:id/messages`. */
export async function chatHistory(baseUrl: string, token: string, chatId: string, downTo = 0): Promise<StoredMessage[] | undefined> {
  return (await chatHistoryAt(baseUrl, token, chatId, downTo))?.messages;
}

/**
 * The messages after `downTo`, oldest first, with the chat seq the history reflects (the first
 * page's `seq`: the projection may lag the stream).
 */
export async function chatHistoryAt(baseUrl: string, token: string, chatId: string, downTo = 0): Promise<{ messages: StoredMessage[]; seq: number } | undefined> {
  const items: StoredMessage[] = [];
  let before: string | null = null;
  let seq: number | undefined;
  for (;;) {
    const page = await api(baseUrl, 'GET', `/api/v1/chats/${chatId}/messages?limit=200${before ? `&before=${encodeURIComponent(before)}` : ''}`, token);
    if (page.status !== 200) return undefined;
    seq ??= page.body.seq as number;
    for (const m of page.body.items) if (m.seq > downTo) items.push({ id: m.id, seq: m.seq, body: m.body });
    before = page.body.nextCursor;
    const oldest = page.body.items.at(-1)?.seq ?? 0;
    if (!before || oldest <= downTo) break;
  }
  return { messages: items.reverse(), seq: seq ?? 0 };
}

const FRAME_RATE = 40;
const FRAME_BURST = 40;

/**
 * A client that behaves as a good real one does, so that what the checker sees is the server's
 * doing: it keeps an outbox of unacknowledged sends and sends them again with the same clientMsgId
 * (after a reconnect, an error or a silence of `retryAfterMs`); when its socket drops it reconnects,
 * to the next gateway in its list, and resumes from the last seq it has of each chat; on `reset`
 * it reloads the chat over HTTP. Everything it sends and receives goes to the history.
 */
export class FaultClient {
  private ws: WebSocket | undefined;
  private gatewayIndex: number;
  private stopped = false;
  private offline = false;
  private counter = 0;
  private readonly cursors = new Map<string, number>();
  private readonly seen = new Map<string, Set<number>>();
  private readonly reloads = new Map<string, number>();
  private readonly outbox = new Map<string, { chatId: string; body: string; lastSentAt: number; transmitted: boolean; due: boolean }>();
  private tokens = FRAME_BURST;
  private refilledAt = Date.now();
  /** `rate_limited` errors received (they carry no ref; the retry timer covers the frame). */
  rateLimited = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private reconnecting: Promise<void> | undefined;
  /** Sockets opened, including the first; closes seen, with their codes. */
  connects = 0;
  /** Reloads after `reset` that found history older than the reset's seq and asked again. */
  reloadWaits = 0;
  /** Sends transmitted again (same clientMsgId) after a reconnect, an error or a silence. */
  resent = 0;
  readonly closes: number[] = [];
  /** Per chat, what the gateway said about it outside events (not_found, reset): for a failure's report. */
  private readonly notes = new Map<string, string[]>();

  constructor(
    readonly name: string,
    readonly account: Account,
    readonly chats: string[],
    private readonly gateways: { wsUrl: string; baseUrl: string }[],
    private readonly history: History,
    private readonly options: { retryAfterMs?: number; firstGateway?: number } = {},
  ) {
    this.gatewayIndex = options.firstGateway ?? 0;
    for (const chatId of chats) {
      this.cursors.set(chatId, 0);
      this.seen.set(chatId, new Set());
      history.recordStart(name, chatId, 0);
    }
  }

  get pending(): number {
    return this.outbox.size;
  }

  get connected(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** The index (in the scenario's list) of the gateway its open socket is on; null while it has none. */
  get onGateway(): number | null {
    return this.connected ? this.gatewayIndex % this.gateways.length : null;
  }

  /** Whether a reload of the chat (after `reset`) is still under way. */
  reloading(chatId: string): boolean {
    return (this.reloads.get(chatId) ?? 0) > 0;
  }

  cursor(chatId: string): number {
    return this.cursors.get(chatId) ?? 0;
  }

  private get gateway() {
    return this.gateways[this.gatewayIndex % this.gateways.length]!;
  }

  async start(): Promise<void> {
    await this.connect();
    this.retryTimer = setInterval(() => this.retryStale(), 50);
  }

  /** Sends a new message to `chatId` (recorded first, so even a send lost on the wire counts). */
  send(chatId: string): void {
    const clientMsgId = `${this.name}-${++this.counter}`;
    const body = bodyFor(clientMsgId, 'x'.repeat(100));
    this.history.recordSend({ clientMsgId, chatId, client: this.name, body });
    this.outbox.set(clientMsgId, { chatId, body, lastSentAt: Date.now(), transmitted: false, due: true });
    this.transmit(clientMsgId);
  }

  /** Closes the socket and stays away (sends queue in the outbox) until `goOnline()`. */
  goOffline(): void {
    this.offline = true;
    this.ws?.terminate();
  }

  async goOnline(): Promise<void> {
    this.offline = false;
    await this.connect();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.retryTimer);
    this.ws?.terminate();
    await this.reconnecting;
  }

  private note(chatId: string, what: string): void {
    const list = this.notes.get(chatId) ?? [];
    if (list.length < 20) list.push(`${new Date().toISOString().slice(11, 23)} socket#${this.connects} ${what}`);
    this.notes.set(chatId, list);
  }

  /** What this client went through, for a failed check's message. */
  describe(): string {
    const chats = this.chats.map((chatId) => `  ${chatId}: cursor ${this.cursor(chatId)}, seen ${this.seen.get(chatId)!.size}${(this.notes.get(chatId) ?? []).map((n) => `\n    ${n}`).join('')}`);
    return `${this.name}: ${this.connects} socket(s), closes [${this.closes.join(',')}]\n${chats.join('\n')}`;
  }

  private transmit(clientMsgId: string): void {
    const entry = this.outbox.get(clientMsgId);
    if (!entry || !this.connected) return;
    // Paced below the gateway's per-socket frame rate (WS_FRAME_RATE, 50/s): an outbox that grew
    // while disconnected must not be flushed as a flood (the gateway would close with 1008).
    if (!this.takeToken()) {
      entry.due = true;
      return;
    }
    if (entry.transmitted) this.resent++;
    entry.transmitted = true;
    entry.due = false;
    entry.lastSentAt = Date.now();
    this.ws!.send(JSON.stringify({ op: 'send', chatId: entry.chatId, clientMsgId, body: entry.body }));
  }

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(FRAME_BURST, this.tokens + ((now - this.refilledAt) / 1000) * FRAME_RATE);
    this.refilledAt = now;
  }

  private takeToken(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** Oldest first: what is due (new, after a reconnect or an error) or unanswered for too long. */
  private retryStale(): void {
    const limit = Date.now() - (this.options.retryAfterMs ?? 3_000);
    this.refill();
    for (const [clientMsgId, entry] of this.outbox) {
      if (!this.connected || this.tokens < 1) return;
      if (entry.due || entry.lastSentAt < limit) this.transmit(clientMsgId);
    }
  }

  private async connect(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      const opened = await this.open().catch(() => false);
      if (opened) return;
      // That gateway is down or refused us: the next one, after a short, growing pause.
      this.gatewayIndex++;
      await sleep(Math.min(100 * 2 ** Math.min(attempt, 4), 1_000));
    }
  }

  private open(): Promise<boolean> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.gateway.wsUrl}?token=${encodeURIComponent(this.account.accessToken)}`);
      const timer = setTimeout(() => (ws.terminate(), reject(new Error('connect timeout'))), 5_000);
      ws.once('unexpected-response', () => (clearTimeout(timer), ws.terminate(), reject(new Error('upgrade refused'))));
      ws.once('error', (error) => (clearTimeout(timer), reject(error)));
      ws.once('open', () => {
        clearTimeout(timer);
        this.ws = ws;
        this.connects++;
        ws.on('error', () => {});
        ws.on('message', (data) => this.onFrame(JSON.parse(String(data))));
        ws.on('close', (code) => this.onClose(ws, code));
        // Resume first (the gateway holds live events until then), then whatever is unacked.
        this.takeToken();
        ws.send(JSON.stringify({ op: 'resume', cursors: Object.fromEntries(this.cursors) }));
        for (const entry of this.outbox.values()) entry.due = true;
        this.retryStale();
        resolve(true);
      });
    });
  }

  private onClose(ws: WebSocket, code: number): void {
    this.closes.push(code);
    if (this.ws !== ws) return;
    this.ws = undefined;
    if (this.stopped || this.offline) return;
    this.reconnecting = sleep(100 + Math.random() * 200)
      .then(() => this.connect())
      .finally(() => (this.reconnecting = undefined));
  }

  private onFrame(frame: any): void {
    switch (frame.op) {
      case 'ack':
        this.history.recordAck(frame.clientMsgId, { messageId: frame.messageId, seq: frame.seq });
        this.outbox.delete(frame.clientMsgId);
        return;
      case 'error':
        if (frame.code === 'rate_limited') this.rateLimited++;
        if (typeof frame.ref === 'string' && this.cursors.has(frame.ref)) this.note(frame.ref, `error ${frame.code}`);
        if (frame.ref && this.outbox.has(frame.ref)) {
          this.history.recordError(frame.ref, frame.code);
          // Stays in the outbox; the retry timer sends it again half a second from now.
          this.outbox.get(frame.ref)!.lastSentAt = Date.now() - (this.options.retryAfterMs ?? 3_000) + 500;
        }
        return;
      case 'event':
        if (frame.type === 'read.updated' || !this.cursors.has(frame.chatId)) return;
        if (frame.type === 'message.created') {
          this.history.recordDelivery(this.name, { chatId: frame.chatId, seq: frame.seq, messageId: frame.data.id, body: frame.data.body, via: 'live' });
          this.seen.get(frame.chatId)!.add(frame.seq);
        }
        this.cursors.set(frame.chatId, Math.max(this.cursor(frame.chatId), frame.seq));
        return;
      case 'reset':
        this.note(frame.chatId, `reset to ${frame.seq}`);
        void this.reload(frame.chatId, frame.seq);
        return;
    }
  }

  /**
   * After `reset`: what the socket will not replay (up to `through`) comes from history, as soon as
   * the projection has reached it (its answer's `seq`); live events go on meanwhile, and carry
   * everything after `through`.
   */
  private async reload(chatId: string, through: number): Promise<void> {
    this.reloads.set(chatId, (this.reloads.get(chatId) ?? 0) + 1);
    try {
      await this.reloadOnce(chatId, through);
    } finally {
      this.reloads.set(chatId, this.reloads.get(chatId)! - 1);
    }
  }

  private async reloadOnce(chatId: string, through: number): Promise<void> {
    const from = this.cursor(chatId);
    let answer = await chatHistoryAt(this.gateway.baseUrl, this.account.accessToken, chatId, from);
    // History unavailable (the messages service is down) or older than the reset: ask again. Not
    // by dropping the socket to get another reset: live events move the cursor past `through`
    // meanwhile, so the next resume would not reset and the gap would be forgotten (the cause of
    // "never got N messages, first seq 2" in projector.test.ts).
    while ((!answer || answer.seq < through) && !this.stopped) {
      if (answer) this.reloadWaits++;
      else this.note(chatId, 'history unavailable; reload retried');
      await sleep(200);
      answer = await chatHistoryAt(this.gateway.baseUrl, this.account.accessToken, chatId, from);
    }
    if (!answer) return;
    const seen = this.seen.get(chatId)!;
    let taken = 0;
    for (const m of answer.messages) {
      if (seen.has(m.seq)) continue; // arrived live while the page loaded
      // After `through` the socket delivers live (protocol.md, Reset): taking those from history
      // too would count the live copy as a second delivery, and would hide a live one missing.
      if (m.seq > through) continue;
      seen.add(m.seq);
      taken += 1;
      this.history.recordDelivery(this.name, { chatId, seq: m.seq, messageId: m.id, body: m.body, via: 'reload' });
      this.cursors.set(chatId, Math.max(this.cursor(chatId), m.seq));
    }
    const seqs = answer.messages.map((m) => m.seq);
    this.note(chatId, `reloaded ${taken} of ${seqs.length} (after ${from}, seqs ${seqs[0] ?? '-'}..${seqs.at(-1) ?? '-'}, history at ${answer.seq})`);
  }
}

/**
 * Open-loop load: `rate` sends per second on a schedule, whatever the answers (so a stalled server
 * does not slow the senders down and hide it), each from a random client to one of its chats.
 */
export async function runLoad(clients: FaultClient[], rate: number, durationMs: number, signal?: { stop: boolean }): Promise<number> {
  const started = Date.now();
  let sent = 0;
  while (Date.now() - started < durationMs && !signal?.stop) {
    const due = Math.floor(((Date.now() - started) / 1000) * rate);
    for (; sent < due; sent++) {
      const client = clients[Math.floor(Math.random() * clients.length)]!;
      client.send(client.chats[Math.floor(Math.random() * client.chats.length)]!);
    }
    await sleep(10);
  }
  return sent;
}
