import type { ChatEvent } from '@parley/contracts';
import { toClientEvent } from '@parley/contracts';
import type { Metrics } from '@parley/telemetry';
import { FLUSH_EARLY_UNITS, Outbox } from './outbox.js';
import type { Socket, SocketData } from './registry.js';

/** Close code for a reader too slow to keep up: reconnect and resume (docs/protocol.md). */
export const CLOSE_SLOW_READER = 4008;
/** Most live events held for one socket while it resumes before it is told to start over. */
const MAX_HELD = 1_000;

/**
 * Delivers chat events to the sockets of a chat's members on this gateway, exactly once and in
 * seq order per socket: each socket remembers the last seq it got per chat, so an event that a
 * resume already sent is not sent again, and live events that arrive during a resume are held and
 * sent after it. A socket whose outgoing buffer passes `maxBufferedBytes` is closed (4008) instead
 * of buffering without bound; the client reconnects and resumes.
 */
export class ChatDelivery {
  private readonly members = new Map<string, ChatSockets>();
  /** Every frame to a client leaves through this, events and all others alike, so order per socket holds. */
  readonly outbox: Outbox;

  constructor(
    private readonly metrics: Metrics,
    private readonly maxBufferedBytes: number,
    /** Called when a chat gets its first local socket, and when it loses its last (follow / unfollow). */
    private readonly hooks: { first?: (chatId: string) => void; last?: (chatId: string) => void } = {},
  ) {
    // What the outbox holds back for the turn's end stays well below the slow-reader limit, so
    // only bytes uWebSockets.js could not hand to the kernel can pass it (sendNow).
    this.outbox = new Outbox(Math.min(FLUSH_EARLY_UNITS, Math.floor(maxBufferedBytes / 4)));
  }

  /** Makes the socket receive the chat, keeping what it already got from it (a catch-up sends before it joins). */
  join(socket: Socket, chatId: string): void {
    const data = socket.getUserData().state;
    if (data.closed) return;
    let set = this.members.get(chatId);
    if (!set) {
      this.members.set(chatId, (set = new ChatSockets(chatId)));
      this.hooks.first?.(chatId);
    }
    set.add(socket);
    if (data.chats.has(chatId)) return;
    // Keyed by the chat's one id string here, not the socket's own copy (parsed from a reply or
    // an event): a chat's members on this gateway then share it (docs/performance.md, idle memory).
    data.chats.set(set.chatId, data.notIn?.get(chatId) ?? 0);
    forgetNotIn(data, chatId);
  }

  leave(socket: Socket, chatId: string): void {
    const data = socket.getUserData().state;
    const delivered = data.chats.get(chatId);
    if (delivered !== undefined) {
      data.chats.delete(chatId);
      // Events of the chat may still reach the socket (held during a resume, a resume's own): what
      // it has is kept, so none of them arrives twice.
      if (delivered > 0) (data.notIn ??= new Map()).set(chatId, delivered);
    }
    this.removeMember(socket, chatId);
  }

  /** The local sockets that receive a chat. */
  socketsIn(chatId: string): Iterable<Socket> {
    return this.members.get(chatId) ?? [];
  }

  /** Forgets a closed socket everywhere. */
  forget(socket: Socket): void {
    const data = socket.getUserData().state;
    for (const chatId of data.chats.keys()) this.removeMember(socket, chatId);
    data.chats.clear();
    data.notIn = null;
    data.gapBelow = null;
  }

  private removeMember(socket: Socket, chatId: string): void {
    const set = this.members.get(chatId);
    if (!set) return;
    set.delete(socket);
    if (set.size === 0) {
      this.members.delete(chatId);
      this.hooks.last?.(chatId);
    }
  }

  /** Sends one stored event to every local member socket. */
  publish(event: ChatEvent): void {
    const sockets = this.members.get(event.chatId);
    if (!sockets || sockets.size === 0) return;
    const frame = JSON.stringify(toClientEvent(event));
    let sent = 0;
    for (const socket of sockets) if (this.deliver(socket, event.chatId, event.seq, frame)) sent += 1;
    this.countSent(sent);
  }

  /**
   * Tells the chat's sockets that events up to `seq` will not come live (a gap too large to fill):
   * each reloads the chat over HTTP up to `seq`, as after a resume's `reset`. Held like an event, so
   * it stays in order; a socket that already has `seq` (it resumed past the gap) does not get it.
   */
  reset(chatId: string, seq: number): void {
    const frame = JSON.stringify({ op: 'reset', chatId, seq });
    for (const socket of this.members.get(chatId) ?? []) this.deliver(socket, chatId, seq, frame);
  }

  /** Sends to one socket unless it already has this seq; holds it while the socket resumes. True if sent now. */
  private deliver(socket: Socket, chatId: string, seq: number, frame: string): boolean {
    const data = socket.getUserData().state;
    if (data.closed) return false;
    if (data.held) {
      if (data.held.length >= MAX_HELD) {
        this.outbox.end(socket, CLOSE_SLOW_READER, 'too many events during resume; reconnect and resume');
        return false;
      }
      data.held.push({ chatId, seq, frame });
      return false;
    }
    return this.sendLive(socket, chatId, seq, frame);
  }

  /**
   * sendNow for a live event (or a live reset): the first one of a chat on a socket that got
   * nothing of it before starts above what the socket has, so the socket is marked as missing the
   * events below it (resumeGap). A resume's or a catch-up's events start at the cursor they were
   * given, so they need no mark.
   */
  private sendLive(socket: Socket, chatId: string, seq: number, frame: string): boolean {
    const data = socket.getUserData().state;
    const had = data.chats.get(chatId) ?? data.notIn?.get(chatId) ?? 0;
    const sent = this.sendNow(socket, chatId, seq, frame);
    if (sent && had === 0 && seq > 1) markGap(data, chatId, seq - 1);
    return sent;
  }

  /**
   * Whether a resume from `cursor` would leave a hole: the socket already got events of the chat
   * past the cursor, but not the ones between (a live event released before a late resume, or
   * after a failed one). Sending those now would put them after newer ones, and skipping them (as
   * already sent) loses them; the resume answers `reset` instead (docs/protocol.md).
   */
  resumeGap(socket: Socket, chatId: string, cursor: number): boolean {
    const data = socket.getUserData().state;
    const delivered = data.chats.get(chatId) ?? data.notIn?.get(chatId) ?? 0;
    return delivered > cursor && (data.gapBelow?.get(chatId) ?? 0) > cursor;
  }

  /** What the socket has of the chat: the last seq sent to it, or that a resume or reset recorded. */
  deliveredOf(socket: Socket, chatId: string): number {
    const data = socket.getUserData().state;
    return data.chats.get(chatId) ?? data.notIn?.get(chatId) ?? 0;
  }

  /**
   * Records a `reset` to `seq` sent to the socket: it has the chat up to there (reloaded over
   * HTTP), and a later resume from below it is a hole again.
   */
  resetTo(socket: Socket, chatId: string, seq: number): void {
    this.deliveredUpTo(socket, chatId, seq);
    markGap(socket.getUserData().state, chatId, seq);
  }

  /** Sends unless the socket already has this seq. True if sent; the caller counts it (countSent). */
  sendNow(socket: Socket, chatId: string, seq: number, frame: string): boolean {
    const data = socket.getUserData().state;
    if (data.closed) return false;
    // One lookup for a chat the socket is in, as nearly every call is: this runs per frame.
    const inChat = data.chats.get(chatId);
    if (seq <= (inChat ?? data.notIn?.get(chatId) ?? 0)) return false;
    if (this.outbox.buffered(socket) > this.maxBufferedBytes) {
      this.outbox.end(socket, CLOSE_SLOW_READER, 'reader too slow; reconnect and resume');
      return false;
    }
    recordDelivered(data, chatId, seq, inChat !== undefined);
    this.outbox.send(socket, frame);
    return true;
  }

  /** Records that the socket has a chat up to `seq` (a resume's cursor or reset); never lowers it. */
  deliveredUpTo(socket: Socket, chatId: string, seq: number): void {
    const data = socket.getUserData().state;
    const inChat = data.chats.get(chatId);
    if ((inChat ?? data.notIn?.get(chatId) ?? 0) < seq) recordDelivered(data, chatId, seq, inChat !== undefined);
  }

  /**
   * Counts event frames sent, once per batch: a labelled prom-client increment hashes its labels,
   * and an event goes to several sockets.
   */
  countSent(frames: number): void {
    if (frames > 0) this.metrics.websocketMessages.inc({ direction: 'out', op: 'event' }, frames);
  }

  /**
   * Sends an ephemeral frame (typing) to the chat's member sockets except those of `exceptUser`.
   * Returns how many sockets got it. Not held during resume and not seq-tracked: it is best effort.
   */
  sendToMembers(chatId: string, frame: string, exceptUser: string | null): number {
    let sent = 0;
    for (const socket of this.members.get(chatId) ?? []) {
      const data = socket.getUserData().state;
      if (data.closed || data.userId === exceptUser || this.outbox.buffered(socket) > this.maxBufferedBytes) continue;
      this.outbox.send(socket, frame);
      sent += 1;
    }
    return sent;
  }

  /** Ends a resume: sends the held live events in order (skipping what the resume already sent). */
  release(socket: Socket): void {
    const data = socket.getUserData().state;
    const held = data.held ?? [];
    data.held = null;
    if (data.holdTimer) clearTimeout(data.holdTimer);
    data.holdTimer = null;
    // Held events are in arrival order, which per chat is seq order (one ordered consumer).
    let sent = 0;
    for (const h of held) if (this.sendLive(socket, h.chatId, h.seq, h.frame)) sent += 1;
    this.countSent(sent);
  }

  /** The seqs of the live events held for the socket in one chat, in order. */
  heldSeqs(socket: Socket, chatId: string): number[] {
    return (socket.getUserData().state.held ?? []).filter((h) => h.chatId === chatId).map((h) => h.seq);
  }
}

/** Records the last seq of a chat the socket has, with its memberships or, for one it is not in, apart. */
function recordDelivered(data: SocketData, chatId: string, seq: number, inChat: boolean): void {
  if (inChat) data.chats.set(chatId, seq);
  else (data.notIn ??= new Map()).set(chatId, seq);
}

function markGap(data: SocketData, chatId: string, below: number): void {
  if (below > (data.gapBelow?.get(chatId) ?? 0)) (data.gapBelow ??= new Map()).set(chatId, below);
}

function forgetNotIn(data: SocketData, chatId: string): void {
  if (!data.notIn?.delete(chatId)) return;
  if (data.notIn.size === 0) data.notIn = null;
}

/** A chat's sockets on this gateway, with the chat's id string their sockets' maps share. */
class ChatSockets extends Set<Socket> {
  constructor(readonly chatId: string) {
    super();
  }
}
