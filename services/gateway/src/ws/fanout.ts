import type { Msg, Subscription } from '@nats-io/transport-node';
import type { Bus, Sequencer } from '@parley/bus';
import { isId, memberRemovedBy, membersAddedBy, parseChatEvent, parseReceiptEvent, streamName, subjects, type ChatEvent } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { ChatDelivery } from './delivery.js';
import { eventsAfter, eventsBetween } from '@parley/bus';
import type { Socket, SocketRegistry } from './registry.js';
import { membershipAfter, removedIn, replayTo } from './replay.js';

interface Followed {
  events: Subscription;
  receipts: Subscription;
  /** Highest seq of this chat handled here; a jump past it is a gap, filled from the stream. */
  lastSeq: number;
  /**
   * Members removed in the events applied here since `since` (and not added again), with the seq of
   * the removal: a socket set up from a projection answer older than that is not joined.
   */
  removed: Map<string, number>;
  /** The seq from which `removed` knows every removal (the follow's start; raised past an overflow). */
  since: number;
  /**
   * Nothing past `since` has been read or applied here yet: `since` is only a projection's answer
   * (or 0), and the events after it (a removal among them) are in the stream, not here. A gateway
   * that starts following a chat heard none of the events stored before its subscription, so until
   * the chat's events since `since` are read (a set-up's join, a gap fill) `removed` knows nothing.
   */
  unread: boolean;
  /** Work on one chat runs in order: live events, gap fills and inbox catch-ups never interleave. */
  chain: Promise<void>;
}

/**
 * Live delivery, scaled out: JetStream republishes every stored chat event on core NATS
 * (`<ns>.live.chat.<chatId>`, streams.ts), and a gateway subscribes only to the chats its
 * connected users are in, so NATS carries each event just to the gateways that hold its recipients.
 * Republished events are only those the stream accepted, in stream order.
 *
 * Core NATS is at-most-once, so each followed chat remembers its last seq and fills a gap from the
 * stream before going on. New members are announced on `<ns>.inbox.<userId>` (chats/notify.ts in
 * the messages service); their gateway joins them and reads the chat from the event that added them.
 */
export class LiveFanout {
  private readonly followed = new Map<string, Followed>();
  private inbox: Subscription | undefined;
  private readonly stream: string;

  constructor(
    private readonly deps: {
      bus: Bus;
      namespace: string;
      registry: SocketRegistry;
      delivery: ChatDelivery;
      log: Logger;
      metrics: Metrics;
      /** Most events read from the stream to fill one gap. */
      maxCatchUp: number;
      /** Learns each chat's newest event, so this gateway's next send to it builds on that. */
      sequencer: Pick<Sequencer, 'observe'>;
    },
  ) {
    this.stream = streamName(deps.namespace, 'chats');
  }

  start(): void {
    this.inbox = this.deps.bus.nc.subscribe(subjects.allInboxes(this.deps.namespace), {
      callback: (err, msg) => {
        if (!err) this.onInbox(msg);
      },
    });
  }

  async stop(): Promise<void> {
    await this.inbox?.drain().catch(() => {});
    for (const chatId of [...this.followed.keys()]) this.unfollow(chatId);
  }

  /** Starts receiving a chat's live events (its first local member joined). */
  follow(chatId: string): void {
    if (this.followed.has(chatId)) return;
    const { nc } = this.deps.bus;
    const state: Followed = {
      events: nc.subscribe(subjects.liveChat(this.deps.namespace, chatId), {
        callback: (err, msg) => {
          if (!err) this.onEvent(chatId, msg);
        },
      }),
      receipts: nc.subscribe(subjects.liveReceipts(this.deps.namespace, chatId), {
        callback: (err, msg) => {
          if (!err) this.onReceipt(chatId, msg);
        },
      }),
      lastSeq: 0,
      removed: new Map(),
      since: 0,
      unread: true,
      chain: Promise.resolve(),
    };
    this.followed.set(chatId, state);
    this.deps.metrics.followedChats.set(this.followed.size);
  }

  /**
   * The chat seq that this gateway's knowledge of the chat's local members reflects: the last
   * event applied here, or the set-up answer that started following the chat (the chat writer
   * folds what was stored after it before a send is appended). Undefined when it has neither (the
   * send asks the projection, isMember). Later set-up answers, for other users' sockets, never
   * raise it: one can be ahead of the events applied here, and a removal of the sender between
   * the two, not yet applied here (their socket still in the chat), was below the basis and never
   * folded, so the removed member's send was stored after their removal.
   */
  basisOf(chatId: string): number | undefined {
    const seq = this.followed.get(chatId)?.lastSeq ?? 0;
    return seq > 0 ? seq : undefined;
  }

  /** A projection answer about the chat's members, as of its chat seq `seq`. */
  noteSnapshot(chatId: string, seq: number): void {
    // A chat just followed (nothing applied yet) starts from the answer: the first live event past
    // it fills the events between from the stream, a removal among them included.
    const state = this.followed.get(chatId);
    if (state && state.lastSeq === 0 && seq > 0) state.lastSeq = state.since = seq;
  }

  /**
   * Whether the user was removed from the chat after `seq` (a projection answer that said member),
   * as far as the events applied here tell; undefined when they do not reach back to `seq`, when
   * nothing past the follow's start has been read yet (`unread`), or the chat is not followed here
   * (then the socket joins through joinAfter, which reads them). Answering "not removed" while
   * unread joined a member removed before this gateway followed the chat: the first set-up's
   * joinAfter read the stream for its own user only, and the removed one's resume then replayed
   * the chat past the removal, typing and receipts included.
   */
  removedSince(chatId: string, userId: string, seq: number): boolean | undefined {
    const state = this.followed.get(chatId);
    if (!state || state.unread || seq < state.since) return undefined;
    return (state.removed.get(userId) ?? 0) > seq;
  }

  /** Stops receiving a chat (its last local member left or disconnected). */
  unfollow(chatId: string): void {
    const state = this.followed.get(chatId);
    if (!state) return;
    state.events.unsubscribe();
    state.receipts.unsubscribe();
    this.followed.delete(chatId);
    this.deps.metrics.followedChats.set(this.followed.size);
  }


  /** Runs `work` after what the chat has queued; resolves once it has run (or failed, logged). */
  private enqueue(chatId: string, work: (state: Followed) => Promise<void> | void): Promise<void> {
    const state = this.followed.get(chatId);
    if (!state) return Promise.resolve();
    state.chain = state.chain
      .then(() => (this.followed.get(chatId) === state ? work(state) : undefined))
      .catch((error: unknown) => this.deps.log.error({ err: (error as Error).message, chatId }, 'live delivery failed'));
    return state.chain;
  }

  private onEvent(chatId: string, msg: Msg): void {
    let event: ChatEvent;
    try {
      const parsed = parseChatEvent(msg.json());
      if (!parsed.ok) throw new Error(parsed.reason);
      event = parsed.event;
    } catch (error) {
      this.deps.log.error({ chatId, reason: (error as Error).message }, 'unreadable live chat event skipped');
      return;
    }
    // JetStream's republish says where it stored the event.
    const streamSeq = Number(msg.headers?.get('Nats-Sequence'));
    if (streamSeq > 0) this.deps.sequencer.observe(subjects.chat(this.deps.namespace, chatId), streamSeq, event.seq, event);
    this.enqueue(chatId, async (state) => {
      if (state.lastSeq > 0 && event.seq > state.lastSeq + 1) await this.fill(chatId, state, state.lastSeq, event.seq);
      this.apply(state, event);
    });
  }

  /** Reads the events (from, until) from the stream: the ones core NATS did not bring. */
  private async fill(chatId: string, state: Followed, from: number, until: number): Promise<void> {
    const subject = subjects.chat(this.deps.namespace, chatId);
    const missing = await eventsAfter(this.deps.bus, this.stream, subject, from, this.deps.maxCatchUp);
    if ('reset' in missing) {
      // Too far behind to replay live: the chat's sockets reload what they missed over HTTP, up
      // to the event that revealed the gap (it follows), or the head (an inbox notice's catch-up).
      const upTo = Math.min(until - 1, missing.headSeq);
      this.deps.log.warn({ chatId, from, upTo }, 'live gap too large to fill; sockets get reset');
      // What the skipped events say about members still applies here, first: one removed in them
      // would otherwise keep getting the chat (the reset included) and could send on this
      // gateway's position past the removal; one added joins and gets the reset (e2e/write-model.test.ts).
      this.applyMembership(state, chatId, await eventsBetween(this.deps.bus, this.stream, subject, from, upTo));
      state.unread = false;
      this.deps.delivery.reset(chatId, upTo);
      state.lastSeq = Math.max(state.lastSeq, upTo);
      return;
    }
    for (const event of missing.events) if (event.seq < until) this.apply(state, event);
  }

  /** Joins and removes local sockets as `events` leave each user's membership, without delivering them. */
  private applyMembership(state: Followed, chatId: string, events: ChatEvent[]): void {
    for (const event of events) noteMembership(state, event, memberRemovedBy(event));
    for (const [userId, now] of membershipAfter(events)) {
      for (const socket of this.deps.registry.socketsOf(userId)) {
        if (now) this.deps.delivery.join(socket, chatId);
        else this.deps.delivery.leave(socket, chatId);
      }
    }
  }

  private apply(state: Followed, event: ChatEvent): void {
    if (event.seq <= state.lastSeq) return;
    state.lastSeq = event.seq;
    // Applied in order from `since` (a jump was filled first): `removed` now knows what it says.
    state.unread = false;
    // New members start receiving the chat with the event that made them members.
    for (const userId of membersAddedBy(event)) {
      for (const socket of this.deps.registry.socketsOf(userId)) this.deps.delivery.join(socket, event.chatId);
    }
    this.deps.delivery.publish(event);
    // A removed member gets the removal itself, then nothing more from this chat.
    const removed = memberRemovedBy(event);
    if (removed) for (const socket of this.deps.registry.socketsOf(removed)) this.deps.delivery.leave(socket, event.chatId);
    noteMembership(state, event, removed);
  }

  private onInbox(msg: Msg): void {
    let notice: { chatId?: unknown; seq?: unknown; userIds?: unknown };
    try {
      notice = msg.json();
    } catch {
      return;
    }
    const { chatId, seq } = notice;
    if (!isId(chatId) || typeof seq !== 'number' || !Array.isArray(notice.userIds)) return;
    const sockets = notice.userIds.filter(isId).flatMap((u) => [...this.deps.registry.socketsOf(u)]).filter((s) => !s.getUserData().state.chats.has(chatId));
    // From the event that added them.
    this.joinAfter(chatId, sockets, seq - 1);
  }

  /**
   * Joins sockets to a chat from `seq`, where their user was a member (the event that added them,
   * or a projection answer): each gets the chat's events after it first, in the chat's order, so
   * that one removed since is told so and not joined (a send to a chat the socket is not in, while
   * the projection still trails the removal: e2e/write-model.test.ts). Resolves once they are
   * joined (or left out).
   */
  joinAfter(chatId: string, sockets: Socket[], seq: number, options: { catchUp: boolean } = { catchUp: true }): Promise<void> {
    if (sockets.length === 0) return Promise.resolve();
    if (!this.followed.has(chatId)) {
      // Nobody here follows the chat yet: follow it from there (live events wait in its chain),
      // but join the sockets only through the catch-up below. Joined first, as before, a socket
      // got the chat's typing and receipts until the events since were read, a removal among them
      // included (e2e/write-model.test.ts, a loaded CI run).
      this.follow(chatId);
      const state = this.followed.get(chatId)!;
      state.lastSeq = state.since = seq;
    }
    // Each socket is caught up on its own, in the chat's order, and only then lets live events
    // reach it. (Catching the chat up instead skipped everything the others had already received:
    // found by e2e/faults/projector.test.ts, where a notice delayed by a projector crash left
    // members without the messages sent meanwhile.)
    return this.enqueue(chatId, async (state) => {
      if (options.catchUp) await this.catchUpSockets(chatId, state, sockets, seq);
      else {
        // A socket being set up: its resume brings the events (sent now, they would pass its
        // hold and make it skip what lies before them); only whether it is still a member counts.
        const events = await eventsBetween(this.deps.bus, this.stream, subjects.chat(this.deps.namespace, chatId), seq, Number.MAX_SAFE_INTEGER);
        // Read from the follow's start: what they say about members is known here from now on, so
        // the next set-up of this chat need not read the stream again (removedSince). Live events
        // after them are in the chain behind this and apply in turn.
        if (state.unread && seq <= state.since) {
          for (const event of events) if (event.seq > state.since) noteMembership(state, event, memberRemovedBy(event));
          state.unread = false;
        }
        const removed = removedIn(events);
        for (const socket of sockets) if (!removed.has(socket.getUserData().state.userId!)) this.deps.delivery.join(socket, chatId);
      }
      // None joined (all removed since): nobody here needs the chat.
      if (isEmpty(this.deps.delivery.socketsIn(chatId))) this.unfollow(chatId);
    });
  }

  /**
   * Sends each socket the chat's events after `from` (or a reset to the head when that is more
   * than the catch-up allows), then joins it. A user removed again since (a stale notice) gets
   * the removal and nothing after it, and is not joined.
   */
  private async catchUpSockets(chatId: string, state: Followed, sockets: Socket[], from: number): Promise<void> {
    const missing = await eventsAfter(this.deps.bus, this.stream, subjects.chat(this.deps.namespace, chatId), from, this.deps.maxCatchUp);
    let sent = 0;
    let removedIn: Set<string> | undefined;
    for (const socket of sockets) {
      const data = socket.getUserData().state;
      if (data.closed) continue;
      if ('reset' in missing) {
        // Too many to replay: it reloads instead, unless the events it will not get removed it.
        if ((removedIn ??= await this.removalsAfter(chatId, from, missing.headSeq)).has(data.userId!)) continue;
        const head = Math.max(missing.headSeq, state.lastSeq);
        this.deps.delivery.sendNow(socket, chatId, head, JSON.stringify({ op: 'reset', chatId, seq: head }));
        this.deps.delivery.join(socket, chatId);
        continue;
      }
      const replayed = replayTo(this.deps.delivery, socket, chatId, data.userId!, missing.events);
      sent += replayed.sent;
      if (replayed.member) this.deps.delivery.join(socket, chatId);
    }
    this.deps.delivery.countSent(sent);
  }

  /** Users whom the chat's events (from, upTo] leave removed (read from the stream, not delivered). */
  private async removalsAfter(chatId: string, from: number, upTo: number): Promise<Set<string>> {
    return removedIn(await eventsBetween(this.deps.bus, this.stream, subjects.chat(this.deps.namespace, chatId), from, upTo));
  }

  private onReceipt(chatId: string, msg: Msg): void {
    try {
      const parsed = parseReceiptEvent(msg.json());
      if (!parsed.ok || parsed.event.type !== 'ReadPositionUpdated') return;
      const { userId, seq } = parsed.event.data;
      const frame = JSON.stringify({ op: 'event', type: 'read.updated', chatId, seq, data: { userId, seq }, at: parsed.event.meta.occurredAt });
      this.deps.delivery.sendToMembers(chatId, frame, null);
    } catch {
      this.deps.log.error({ chatId }, 'unreadable live receipt skipped');
    }
  }
}

function isEmpty(items: Iterable<unknown>): boolean {
  for (const _ of items) return false;
  return true;
}

/** Most removals remembered per followed chat; past it the oldest goes and `since` rises past it. */
const MAX_REMOVALS_KEPT = 256;

function noteMembership(state: Followed, event: ChatEvent, removed: string | null | undefined): void {
  for (const userId of membersAddedBy(event)) state.removed.delete(userId);
  if (!removed) return;
  state.removed.delete(removed);
  state.removed.set(removed, event.seq);
  const oldest = state.removed.size > MAX_REMOVALS_KEPT ? state.removed.entries().next().value : undefined;
  if (oldest) {
    state.removed.delete(oldest[0]);
    state.since = Math.max(state.since, oldest[1]);
  }
}
