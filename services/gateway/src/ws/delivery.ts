import type { ChatEvent } from '@parley/contracts';
import { toClientEvent } from '@parley/contracts';
import type { Metrics } from '@parley/telemetry';
import { Outbox } from './outbox.js';
import type { Socket } from './registry.js';

/** Close code for a reader too slow to keep up: reconnect and resume (docs/protocol.md). */
export const CLOSE_SLOW_READER = 4008;
/** Most live events held for one socket while it resumes before it is told to start over. */
const MAX_HELD = 1_000;

/**
 * The slow-reader check for live sockets runs once the frames published to them since the last
 * check add up to half the buffer limit (frame length times subscribers): no socket's buffer can
 * have grown by more than that in between. So a socket is closed with 4008 before it holds 1.5
 * times the limit, before uWebSockets.js's own limit (twice ours, connection.ts) would drop a frame
 * and close it abruptly. A check visits the live sockets of the chats published to since the last
 * one: at most one visit per frame, one native call each, against sendNow's work per frame.
 */
const SLOW_READER_CHECK_SHARE = 0.5;

/** The uWebSockets.js topic a chat's live sockets subscribe to. */
export const topicOf = (chatId: string): string => `chat/${chatId}`;

/**
 * Delivers chat events to the sockets of a chat's members on this gateway, exactly once and in
 * seq order per socket. A socket receives a chat in one of two ways:
 *
 * - **live**: subscribed to the chat's uWebSockets.js topic. One `app.publish` per event reaches
 *   every live socket of the chat, the loop over them in C++ (issue 21: a third cheaper per frame
 *   than the loop below, bench/fanout.mjs). A live socket has had every event published here
 *   before it subscribed, and gets each later one exactly once, because the fan-out publishes
 *   each seq once and in order (LiveFanout).
 * - **tracked**: one frame at a time through the Outbox, with a seq check per socket: each socket
 *   remembers the last seq it got per chat, so an event a resume already sent is not sent again,
 *   and live events that arrive during a resume are held and sent after it.
 *
 * A socket starts tracked, and becomes live (`promote`) once it has exactly what was last
 * published to the chat and is not holding; it goes back to tracked (`demote`) when a resume
 * starts holding it. A socket whose outgoing buffer passes `maxBufferedBytes` is closed (4008)
 * instead of buffering without bound; the client reconnects and resumes.
 */
export class ChatDelivery {
  private readonly tracked = new Map<string, Set<Socket>>();
  private readonly live = new Map<string, Set<Socket>>();
  /** Per chat, the last seq sent to its sockets here (events and resets): what a live socket has. */
  private readonly published = new Map<string, number>();
  /** Chats published to since the last slow-reader check, whose live sockets it checks. */
  private readonly touched = new Set<string>();
  /** Bytes published to live sockets since the last check (frame length times subscribers). */
  private touchedBytes = 0;
  /** Every frame to a client leaves through this, events and all others alike, so order per socket holds. */
  readonly outbox = new Outbox();

  constructor(
    private readonly metrics: Metrics,
    private readonly maxBufferedBytes: number,
    /** Called when a chat gets its first local socket, and when it loses its last (follow / unfollow). */
    private readonly hooks: { first?: (chatId: string) => void; last?: (chatId: string) => void } = {},
    /** uWebSockets.js's `app.publish`; without it every socket stays tracked (bench/fanout.mjs). */
    private readonly publishTopic?: (topic: string, frame: string) => void,
  ) {}

  join(socket: Socket, chatId: string): void {
    const data = socket.getUserData();
    if (data.closed || data.chats.has(chatId)) return;
    data.chats.add(chatId);
    if (!this.tracked.has(chatId) && !this.live.has(chatId)) this.hooks.first?.(chatId);
    addTo(this.tracked, chatId, socket);
    this.promote(socket, chatId);
  }

  leave(socket: Socket, chatId: string): void {
    const data = socket.getUserData();
    if (!data.chats.delete(chatId)) return;
    if (data.live.has(chatId)) this.unsubscribe(socket, chatId);
    else removeFrom(this.tracked, chatId, socket);
    if (!this.tracked.has(chatId) && !this.live.has(chatId)) {
      this.published.delete(chatId);
      this.hooks.last?.(chatId);
    }
  }

  /** The local sockets that receive a chat. */
  *socketsIn(chatId: string): Iterable<Socket> {
    yield* this.tracked.get(chatId) ?? [];
    yield* this.live.get(chatId) ?? [];
  }

  /** Forgets a closed socket everywhere. */
  forget(socket: Socket): void {
    for (const chatId of [...socket.getUserData().chats]) this.leave(socket, chatId);
  }

  /** Sends one stored event to every local member socket. */
  publish(event: ChatEvent): void {
    const { chatId, seq } = event;
    if (!this.tracked.has(chatId) && !this.live.has(chatId)) return;
    this.countSent(this.toAll(chatId, seq, JSON.stringify(toClientEvent(event))));
  }

  /**
   * Tells the chat's sockets that events up to `seq` will not come live (a gap too large to fill):
   * each reloads the chat over HTTP up to `seq`, as after a resume's `reset`. Held like an event, so
   * it stays in order; a socket that already has `seq` (it resumed past the gap) does not get it.
   */
  reset(chatId: string, seq: number): void {
    this.toAll(chatId, seq, JSON.stringify({ op: 'reset', chatId, seq }));
  }

  /** A frame at chat position `seq` to the chat's sockets: one publish for the live ones, one by one for the rest. */
  private toAll(chatId: string, seq: number, frame: string): number {
    let sent = 0;
    const live = this.live.get(chatId);
    if (live && seq > (this.published.get(chatId) ?? 0)) {
      this.publishTopic!(topicOf(chatId), frame);
      sent += live.size;
      this.touched.add(chatId);
      this.touchedBytes += frame.length * live.size;
      if (this.touchedBytes > this.maxBufferedBytes * SLOW_READER_CHECK_SHARE) this.checkSlowReaders();
    }
    this.published.set(chatId, Math.max(seq, this.published.get(chatId) ?? 0));
    for (const socket of this.tracked.get(chatId) ?? []) {
      if (this.deliver(socket, chatId, seq, frame)) sent += 1;
      this.promote(socket, chatId);
    }
    return sent;
  }

  /** Sends to one socket unless it already has this seq; holds it while the socket resumes. True if sent now. */
  private deliver(socket: Socket, chatId: string, seq: number, frame: string): boolean {
    const data = socket.getUserData();
    if (data.closed) return false;
    if (data.held) {
      if (data.held.length >= MAX_HELD) {
        this.outbox.end(socket, CLOSE_SLOW_READER, 'too many events during resume; reconnect and resume');
        return false;
      }
      data.held.push({ chatId, seq, frame });
      return false;
    }
    return this.sendNow(socket, chatId, seq, frame);
  }

  /**
   * Sends unless the socket already has this seq. True if sent; the caller counts it (countSent).
   * For tracked sockets: resumes and catch-ups call it only for sockets that are holding or that
   * have not joined the chat yet, and a socket is never live while either holds.
   */
  sendNow(socket: Socket, chatId: string, seq: number, frame: string): boolean {
    const data = socket.getUserData();
    if (data.closed || data.live.has(chatId) || seq <= (data.lastSeq.get(chatId) ?? 0)) return false;
    if (this.outbox.buffered(socket) > this.maxBufferedBytes) {
      this.outbox.end(socket, CLOSE_SLOW_READER, 'reader too slow; reconnect and resume');
      return false;
    }
    data.lastSeq.set(chatId, seq);
    this.outbox.send(socket, frame);
    return true;
  }

  /**
   * Holds a socket's live events (a resume runs): they wait in `held` until `release`. Its live
   * chats go back to tracked first, since a topic cannot hold.
   */
  hold(socket: Socket): void {
    const data = socket.getUserData();
    if (data.held) return;
    for (const chatId of [...data.live]) {
      this.unsubscribe(socket, chatId);
      addTo(this.tracked, chatId, socket);
    }
    data.held = [];
  }

  /**
   * Makes a tracked socket live when it has exactly what was last published to the chat and is not
   * holding: its queued frames leave first (a topic frame would otherwise overtake them; the
   * Outbox writes at the end of the turn, the topic before that), then it subscribes, which takes
   * only what is published after.
   */
  private promote(socket: Socket, chatId: string): void {
    const data = socket.getUserData();
    if (!this.publishTopic || data.closed || data.held || data.live.has(chatId)) return;
    if ((data.lastSeq.get(chatId) ?? 0) !== (this.published.get(chatId) ?? 0)) return;
    this.outbox.flushNow(socket);
    removeFrom(this.tracked, chatId, socket);
    socket.subscribe(topicOf(chatId));
    data.live.add(chatId);
    addTo(this.live, chatId, socket);
  }

  /**
   * Takes a socket off a chat's topic. It first gets what was published to it this turn: an
   * unsubscribe drops what uWebSockets.js has not written yet, and any frame sent to the socket
   * writes that first (a ping: the client answers it and sees nothing). It then has everything
   * published, which its seq records for the tracked path.
   */
  private unsubscribe(socket: Socket, chatId: string): void {
    const data = socket.getUserData();
    data.live.delete(chatId);
    removeFrom(this.live, chatId, socket);
    const published = this.published.get(chatId) ?? 0;
    if ((data.lastSeq.get(chatId) ?? 0) < published) data.lastSeq.set(chatId, published);
    if (data.closed) return; // uWebSockets.js unsubscribed it when it closed
    socket.ping();
    socket.unsubscribe(topicOf(chatId));
  }

  /**
   * The slow-reader check for live sockets, which get frames without passing `sendNow`'s check:
   * the live sockets of the chats published to since the last check (SLOW_READER_CHECK_SHARE).
   */
  private checkSlowReaders(): void {
    this.touchedBytes = 0;
    const chats = [...this.touched];
    this.touched.clear();
    const slow: Socket[] = [];
    // uWebSockets.js's buffer only: a live socket's chat frames never wait in the Outbox. A closed
    // socket is in no live set (forget), so one native call per visit.
    for (const chatId of chats) for (const socket of this.live.get(chatId) ?? []) if (socket.getBufferedAmount() > this.maxBufferedBytes) slow.push(socket);
    for (const socket of slow) this.outbox.end(socket, CLOSE_SLOW_READER, 'reader too slow; reconnect and resume');
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
    for (const socket of this.socketsIn(chatId)) {
      const data = socket.getUserData();
      if (data.closed || data.userId === exceptUser || this.outbox.buffered(socket) > this.maxBufferedBytes) continue;
      this.outbox.send(socket, frame);
      sent += 1;
    }
    return sent;
  }

  /** Ends a resume: sends the held live events in order (skipping what the resume already sent). */
  release(socket: Socket): void {
    const data = socket.getUserData();
    const held = data.held ?? [];
    data.held = null;
    if (data.holdTimer) clearTimeout(data.holdTimer);
    data.holdTimer = null;
    // Held events are in arrival order, which per chat is seq order (one ordered consumer).
    let sent = 0;
    for (const h of held) if (this.sendNow(socket, h.chatId, h.seq, h.frame)) sent += 1;
    this.countSent(sent);
    for (const chatId of data.chats) this.promote(socket, chatId);
  }
}

function addTo(map: Map<string, Set<Socket>>, key: string, socket: Socket): void {
  const set = map.get(key);
  if (set) set.add(socket);
  else map.set(key, new Set([socket]));
}

function removeFrom(map: Map<string, Set<Socket>>, key: string, socket: Socket): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(socket);
  if (set.size === 0) map.delete(key);
}
