import type { Bus } from './connect.js';
import { lastOnSubject, nextOnSubject } from './publish.js';
import { parseChatEvent, parseChatSnapshot, subjects, type ChatEvent, type ChatSnapshot } from '@parley/contracts';

/** The events after a cursor, up to the chat's newest (`headSeq`); or `reset` to that newest. */
export type AfterCursor = { events: ChatEvent[]; headSeq: number } | { reset: true; headSeq: number };

/**
 * Reads a chat's events after a client's cursor straight from the stream (the source of truth, so
 * resume never waits for a projection). The first event after the cursor is found by a binary
 * search over stream sequences with direct gets (`next_by_subj`), then events are read one by one.
 *
 * A gap (events deleted by retention or erasure) or more than `maxEvents` to send answers `reset`:
 * the client reloads history over HTTP instead of the gateway streaming a long backlog.
 */
export async function eventsAfter(bus: Bus, stream: string, subject: string, cursor: number, maxEvents: number): Promise<AfterCursor> {
  const direct = bus.jsm.direct;
  const head = (await lastOnSubject(bus.jsm, stream, subject, { direct: true }))?.stored;
  if (!head) {
    // Retention purged every event of this chat: its snapshot says how far the chat got.
    const floor = await floorOf(bus, stream, subject);
    return floor > cursor ? { reset: true, headSeq: floor } : { events: [], headSeq: floor };
  }
  const headEvent = parse(head.json());
  if (headEvent.seq <= cursor) return { events: [], headSeq: headEvent.seq };
  if (headEvent.seq - cursor > maxEvents) return { reset: true, headSeq: headEvent.seq };

  const lo = await firstAfter(bus, stream, subject, cursor, head.seq);
  const events: ChatEvent[] = [];
  let next = lo;
  let expected = cursor + 1;
  while (expected <= headEvent.seq) {
    const stored = await direct.getMessage(stream, { next_by_subj: subject, seq: next });
    if (!stored) break;
    const event = parse(stored.json());
    if (event.seq > expected) return { reset: true, headSeq: headEvent.seq };
    if (event.seq === expected) {
      events.push(event);
      expected += 1;
    }
    next = stored.seq + 1;
  }
  return { events, headSeq: headEvent.seq };
}

/**
 * The smallest stream sequence whose event on `subject` has a chat seq above `cursor`, by a binary
 * search over stream sequences with direct gets (`next_by_subj`), up to `headStreamSeq`.
 */
async function firstAfter(bus: Bus, stream: string, subject: string, cursor: number, headStreamSeq: number): Promise<number> {
  const direct = bus.jsm.direct;
  let lo = 1;
  let hi = headStreamSeq;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    // Every start in [mid, probe.seq] finds this same event: if it is still at or below the
    // cursor, the answer lies beyond it.
    const probe = await direct.getMessage(stream, { next_by_subj: subject, seq: mid });
    if (!probe) break;
    if (parse(probe.json()).seq > cursor) hi = mid;
    else lo = probe.seq + 1;
  }
  return lo;
}

/**
 * The chat's stored events with `afterSeq < seq <= uptoSeq`, in order, skipping the seqs that
 * are gone (deleted content, expired messages): what a writer folds into the state it decided on
 * before it decides again (the chat writer). Membership events are never deleted alone.
 */
export async function eventsBetween(bus: Bus, stream: string, subject: string, afterSeq: number, uptoSeq: number, afterStreamSeq?: number): Promise<ChatEvent[]> {
  const direct = bus.jsm.direct;
  let next: number;
  if (afterStreamSeq !== undefined) {
    next = afterStreamSeq + 1;
  } else {
    const head = (await lastOnSubject(bus.jsm, stream, subject, { direct: true }))?.stored;
    if (!head) return [];
    next = await firstAfter(bus, stream, subject, afterSeq, head.seq);
  }
  const events: ChatEvent[] = [];
  for (;;) {
    const stored = await direct.getMessage(stream, { next_by_subj: subject, seq: next });
    if (!stored) break;
    const event = parse(stored.json());
    if (event.seq > uptoSeq) break;
    if (event.seq > afterSeq) events.push(event);
    if (event.seq === uptoSeq) break;
    next = stored.seq + 1;
  }
  return events;
}

/**
 * The first event on `subject` stored after stream sequence `afterStreamSeq` that `match` accepts,
 * with its stream sequence; undefined when there is none. Asked of the stream's leader
 * (STREAM.MSG.GET with next_by_subj), not of any replica: used where the seq repair moved a
 * message and the answer decides what is acknowledged or dropped. A rare path, read event by event.
 */
export async function findChatEventAfter(
  bus: Bus,
  stream: string,
  subject: string,
  afterStreamSeq: number,
  match: (event: ChatEvent) => boolean,
): Promise<{ event: ChatEvent; streamSeq: number } | undefined> {
  for (let next = afterStreamSeq + 1; ; ) {
    const stored = await nextOnSubject(bus.jsm, stream, subject, next);
    if (!stored) return undefined;
    const parsed = parseChatEvent(stored.json());
    if (parsed.ok && match(parsed.event)) return { event: parsed.event, streamSeq: stored.seq };
    next = stored.seq + 1;
  }
}

function parse(value: unknown): ChatEvent {
  const parsed = parseChatEvent(value);
  if (!parsed.ok) throw new Error(`unreadable chat event: ${parsed.reason}`);
  return parsed.event;
}

/**
 * A chat's latest ChatSnapshot (issue 18), read from its `<ns>.chatsnap.<chatId>` subject in the
 * chats stream; null when retention never purged any of its events.
 */
export async function chatSnapshotOf(bus: Bus, stream: string, namespace: string, chatId: string): Promise<ChatSnapshot | null> {
  const stored = await bus.jsm.direct.getMessage(stream, { last_by_subj: subjects.chatSnapshot(namespace, chatId) });
  if (!stored) return null;
  const parsed = parseChatSnapshot(stored.json());
  if (!parsed.ok) throw new Error(`unreadable chat snapshot: ${parsed.reason}`);
  return parsed.event;
}

/**
 * The seq a chat's subject continues from when it holds no event: its snapshot's (0 without one).
 * For the chat Sequencer (SequencerOptions.floor) and resume.
 */
export async function floorOf(bus: Bus, stream: string, chatSubject: string): Promise<number> {
  const dot = chatSubject.lastIndexOf('.chat.');
  if (dot < 0) throw new Error(`not a chat subject: ${chatSubject}`);
  const snapshot = await chatSnapshotOf(bus, stream, chatSubject.slice(0, dot), chatSubject.slice(dot + '.chat.'.length));
  return snapshot?.data.seq ?? 0;
}
