import { ChatCursors } from './cursors.js';
import type { ChatEvent, ServerFrame, User } from './types.js';

/** The part of the WebSocket API used; the browser's WebSocket and the `ws` package both fit. */
export interface SocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
export type SocketFactory = (url: string) => SocketLike;

export interface SendFrame {
  chatId: string;
  clientMsgId: string;
  body: string;
  replyTo?: string;
  attachmentIds?: string[];
}

export interface RealtimeHandlers {
  /** A chat event, at most once per chatId+seq, in order. */
  onEvent?: (event: ChatEvent) => void;
  /** The chat must be reloaded over HTTP up to `through`: a `reset`, or a gap in its seqs. */
  onReset?: (chatId: string, through: number) => void;
  onAck?: (ack: { clientMsgId: string; messageId: string; seq: number }) => void;
  /** A send refused for good (not `unavailable`, which is retried). */
  onSendFailed?: (clientMsgId: string, code: string, message: string) => void;
  onTyping?: (chatId: string, userId: string) => void;
  /** `lastSeen` (ISO) comes with `online: false` when the server knows it (a Parley addition). */
  onPresence?: (userId: string, online: boolean, lastSeen?: string) => void;
  /** Someone's public profile changed (a Parley addition): their name and picture update live. */
  onProfile?: (user: User) => void;
  onStatus?: (status: ConnectionStatus) => void;
  /**
   * The access token was refused (4401): return the token to use next (a fresh one if it could be
   * had), or null when the session is over.
   */
  renewToken: () => Promise<string | null>;
}

export type ConnectionStatus = 'connecting' | 'online' | 'offline' | 'stopped';

const OPEN = 1;
const CLOSE_UNAUTHORIZED = 4401;
const CLOSE_TOO_BIG = 1009;
const PING_EVERY_MS = 20_000;
const PONG_WITHIN_MS = 8_000;

/**
 * The realtime half of the contract, following protocol.md's reconnect recipe: keep unacked sends
 * and a cursor per chat; after a drop reconnect with backoff, `resume` first, then re-send the
 * unacked frames with the same clientMsgId (the gateway answers a repeat with the original ack).
 * A ping every 20 s notices a dead network that the browser itself would not report for minutes.
 */
export class RealtimeClient {
  readonly cursors = new ChatCursors();
  /** Unacked sends in the order they were made. */
  private readonly pending = new Map<string, SendFrame>();
  private socket: SocketLike | null = null;
  private status: ConnectionStatus = 'offline';
  private stopped = true;
  private attempt = 0;
  private retryTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private resuming = false;
  /** The newest message read per chat, not yet told to the server: sent together once per turn, and after a resume. */
  private readonly reads = new Map<string, string>();
  private readsQueued = false;

  constructor(
    private readonly wsUrl: string,
    private token: string,
    private readonly handlers: RealtimeHandlers,
    private readonly factory: SocketFactory,
  ) {}

  get connectionStatus(): ConnectionStatus {
    return this.status;
  }

  get unacked(): SendFrame[] {
    return [...this.pending.values()];
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.socket?.close(1000, 'bye');
    this.socket = null;
    this.setStatus('stopped');
  }

  /** Queues a message; it is sent now if connected, else after the next resume. */
  send(frame: SendFrame): void {
    this.pending.set(frame.clientMsgId, frame);
    if (this.status === 'online' && !this.resuming) this.write({ op: 'send', ...frame });
  }

  typing(chatId: string): void {
    if (this.status === 'online') this.write({ op: 'typing', chatId });
  }

  /**
   * Tells the server the newest message read in a chat. Only the last of a turn's reads per chat
   * goes (a catch-up marks every message it brings: one frame each went past the gateway's frame
   * budget, and the socket was closed with 1008), and one made while offline goes after the resume.
   */
  read(chatId: string, messageId: string): void {
    this.reads.set(chatId, messageId);
    if (this.readsQueued) return;
    this.readsQueued = true;
    setTimeout(() => {
      this.readsQueued = false;
      this.flushReads();
    }, 0);
  }

  private flushReads(): void {
    if (this.status !== 'online' || this.resuming) return;
    for (const [chatId, messageId] of this.reads) this.write({ op: 'read', chatId, messageId });
    this.reads.clear();
  }

  /**
   * A newer access token (after a refresh): the next connection uses it, and the open socket is
   * renewed with it (an `auth` frame), so the gateway does not close it when the old one expires.
   */
  renew(token: string): void {
    this.token = token;
    // Also on a socket still authenticating: the gateway takes a socket's frames in order, so this
    // renews it right after the first auth frame is done.
    this.write({ op: 'auth', token });
  }

  /** Drops the connection as a network failure would, and reconnects (used by tests and "retry now"). */
  reconnectNow(): void {
    this.socket?.close(4000, 'client reconnect');
  }

  private connect(): void {
    if (this.stopped) return;
    this.setStatus('connecting');
    // The token goes in the first frame, not in the URL (protocol.md allows both): a URL is written
    // to the access logs of every proxy on the way, the ingress's included, and the token in it
    // would be good there for its 15 minutes.
    const socket = this.factory(this.wsUrl);
    this.socket = socket;
    socket.onopen = () => {
      if (this.socket !== socket) return;
      // The gateway takes a socket's frames in order, after each other: the resume goes right
      // behind the auth frame, so it arrives within the gateway's grace and runs once the socket is
      // set up (waiting for `authenticated` first let live events overtake it when set-ups were
      // slow). A refused token closes the socket (4401) before the resume is read.
      socket.send(JSON.stringify({ op: 'auth', token: this.token }));
      // Online from here, as when the token was in the URL: frames written now wait behind the
      // auth frame on the gateway, and sends wait for the resume anyway. (Online only once
      // `authenticated` came, the page's "connecting" line stayed until the socket's chats were
      // loaded, and its removal moved the page under a click: e2e/web.test.ts, a CI run.)
      this.online();
      this.resuming = true;
      this.write({ op: 'resume', cursors: this.cursors.snapshot() });
      this.startPing();
    };
    socket.onmessage = (ev) => {
      if (this.socket !== socket) return;
      let frame: ServerFrame;
      try {
        frame = JSON.parse(String(ev.data)) as ServerFrame;
      } catch {
        return;
      }
      this.handle(frame);
    };
    socket.onerror = () => {};
    socket.onclose = (ev) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearTimers();
      if (this.stopped) return;
      this.setStatus('offline');
      if (ev.code === CLOSE_TOO_BIG) this.pending.clear();
      // A token refused is closed with 4401 (the auth frame). The upgrade carries no token, so a
      // close before open (a refused upgrade, a network failure) is no reason to refresh it.
      if (ev.code === CLOSE_UNAUTHORIZED) void this.renewAndReconnect();
      else this.scheduleReconnect();
    };
  }

  private async renewAndReconnect(): Promise<void> {
    const token = await this.handlers.renewToken().catch(() => null);
    if (this.stopped) return;
    if (!token) {
      this.stop();
      return;
    }
    this.token = token;
    this.scheduleReconnect();
  }

  private scheduleReconnect(): void {
    // Exponential backoff with jitter, 0.25 s to 10 s, so a restarted gateway is not stampeded.
    const delay = Math.min(10_000, 250 * 2 ** this.attempt) * (0.5 + Math.random() / 2);
    this.attempt++;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  private handle(frame: ServerFrame): void {
    switch (frame.op) {
      case 'event': {
        const verdict = this.cursors.accept(frame);
        if (verdict === 'duplicate') return;
        if (verdict === 'gap') this.handlers.onReset?.(frame.chatId, frame.seq - 1);
        this.handlers.onEvent?.(frame);
        return;
      }
      case 'reset':
        // History is reloaded over HTTP; live delivery goes on from the newest event.
        this.cursors.forget(frame.chatId);
        this.handlers.onReset?.(frame.chatId, frame.seq);
        return;
      case 'resumed':
        this.resuming = false;
        for (const send of this.pending.values()) this.write({ op: 'send', ...send });
        this.flushReads();
        return;
      case 'ack':
        this.attempt = 0;
        this.pending.delete(frame.clientMsgId);
        this.handlers.onAck?.(frame);
        return;
      case 'error':
        this.onError(frame);
        return;
      case 'typing':
        this.handlers.onTyping?.(frame.chatId, frame.userId);
        return;
      case 'presence':
        this.handlers.onPresence?.(frame.userId, frame.online, typeof frame.lastSeen === 'string' ? frame.lastSeen : undefined);
        return;
      case 'profile':
        if (frame.user && typeof frame.user.id === 'string') this.handlers.onProfile?.(frame.user);
        return;
      case 'pong':
        this.attempt = 0;
        if (this.pongTimer) clearTimeout(this.pongTimer);
        this.pongTimer = null;
        return;
      case 'authenticated':
        // The answer to the auth frame (the first, or a renewal): the socket is online already.
        return;
      default: {
        const never: never = frame;
        return never;
      }
    }
  }

  private online(): void {
    // The backoff is not reset here but once the connection proves itself (an ack, a pong): a
    // socket closed right after it opens (1011, 1008) or a send refused as unavailable on every
    // reconnect would otherwise be retried four times a second for as long as it lasts.
    this.setStatus('online');
  }

  private onError(frame: { code: string; message: string; ref?: string }): void {
    // The resume failed on the server (no `resumed` will come): until a new connection resumes,
    // sends would only queue, "sending" for good. Reconnect (with the backoff).
    if (this.resuming && !frame.ref) {
      this.reconnectNow();
      return;
    }
    const send = frame.ref ? this.pending.get(frame.ref) : undefined;
    if (!send) return;
    // `unavailable` and `rate_limited` are worth repeating (same clientMsgId) after a reconnect.
    if (frame.code === 'unavailable' || frame.code === 'rate_limited') {
      this.reconnectNow();
      return;
    }
    this.pending.delete(send.clientMsgId);
    this.handlers.onSendFailed?.(send.clientMsgId, frame.code, frame.message);
  }

  private startPing(): void {
    this.pingTimer = setInterval(() => {
      if (this.pongTimer) return;
      this.write({ op: 'ping' });
      this.pongTimer = setTimeout(() => this.reconnectNow(), PONG_WITHIN_MS);
    }, PING_EVERY_MS);
  }

  private clearTimers(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.pongTimer) clearTimeout(this.pongTimer);
    this.retryTimer = this.pingTimer = this.pongTimer = null;
  }

  private setStatus(status: ConnectionStatus): void {
    if (status === this.status) return;
    this.status = status;
    this.handlers.onStatus?.(status);
  }

  private write(frame: Record<string, unknown>): void {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(frame));
  }
}

/** A clientMsgId: unique per send, kept across retries of that send. */
export function newClientMsgId(): string {
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
}
