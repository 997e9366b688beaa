import type { JetStreamClient, JetStreamManager } from '@nats-io/jetstream';
import type { Metrics } from '@parley/telemetry';
import { lastOnSubject, publishEvent, readStored, WrongLastSequenceError } from './publish.js';
import { endOfTurn } from './turn.js';

/** The minimum a sequenced event must carry: its type and its per-subject sequence number. */
export interface SequencedEvent {
  type: string;
  seq: number;
}

export interface Appended<E> {
  event: E;
  streamSeq: number;
  /** True when the msgId had been stored before: `event` is the original, not a new one. */
  duplicate: boolean;
}

interface Head {
  streamSeq: number;
  seq: number;
}

/** What a decision came to: the event to append, or why not (the caller's own refusal type). */
export type Decision<E, R> = { event: E } | { refusal: R };

/**
 * Events a subject stored after `afterSeq`, up to and with `uptoSeq` (the stream's, gaps skipped).
 * `afterStreamSeq`, when known, is the stream sequence of the event with seq `afterSeq`: reading
 * can start right after it instead of searching for it.
 */
export type ReadBetween = (afterSeq: number, uptoSeq: number, afterStreamSeq?: number) => Promise<SequencedEvent[]>;

export interface SequencerOptions {
  maxCachedHeads?: number;
  /**
   * The seq a subject continues from when it has no message: the seq its purged events reached
   * (a chat's ChatSnapshot, issue 18). Without it an empty subject starts at 1.
   */
  floor?: (subject: string) => Promise<number>;
}

/** How many of a subject's latest events stay in memory, so deciding again rarely reads the stream. */
const RECENT_PER_SUBJECT = 64;

/**
 * JetStream answered "duplicate" (the same msgId within its two-minute window) for an event that
 * is no longer in the stream: deleted since, as the seq repair deletes the lost copy of a message
 * once it has appended it again (docs/reliability.md). The caller knows what the event was and
 * may find where it went (ChatWriter); otherwise the append fails.
 */
export class DuplicateGoneError extends Error {
  override name = 'DuplicateGoneError';
  constructor(
    readonly subject: string,
    /** Where the original was stored. */
    readonly streamSeq: number,
  ) {
    super(`duplicate of stream seq ${streamSeq} on ${subject}, but it is gone`);
  }
}

/**
 * Appends events to a subject with a gap-free per-subject `seq` (a chat's seq), safely from any
 * number of processes. Each append states the stream sequence of the subject's last message it
 * built on (`Nats-Expected-Last-Subject-Sequence`); if another process appended in between,
 * JetStream refuses, and we re-read the head and rebuild the event with the next seq. So a seq is
 * assigned before the ack, never twice, never skipped, and it is stored inside the event, which
 * makes it identical after any replay.
 *
 * Heads are cached per subject, so the common case costs one publish. Appends to one subject from
 * one process are serialised (they would only conflict with each other otherwise); different
 * subjects proceed in parallel, and those started in one event-loop turn are published together
 * (turn.ts: one socket write for all of them instead of one each).
 */
export class Sequencer {
  private readonly heads = new Map<string, Head>();
  private readonly tails = new Map<string, Promise<unknown>>();
  /** The latest events of cached subjects, appended here or observed live, in seq order. */
  private readonly recent = new Map<string, SequencedEvent[]>();

  constructor(
    private readonly js: JetStreamClient,
    private readonly jsm: JetStreamManager,
    private readonly stream: string,
    private readonly metrics?: Metrics,
    private readonly options: SequencerOptions = {},
  ) {
    this.maxCachedHeads = options.maxCachedHeads ?? 100_000;
  }

  private readonly maxCachedHeads: number;

  append<E extends SequencedEvent>(subject: string, msgId: string, build: (seq: number) => E): Promise<Appended<E>> {
    return this.serialised(subject, () => this.appendNow(subject, msgId, build));
  }

  /**
   * Appends an event decided against everything the subject stored after `basisSeq`, the seq the
   * caller's state reflects (issue 17: a decision is only as good as the events it saw).
   * `decide(newer, seq)` gets the events stored after basisSeq, in order, and the seq the event
   * will take; when another process appends first (an expected-sequence conflict), the new events
   * are read and `decide` runs again with them, so a member removed in between is refused rather
   * than renumbered past their removal. Newer events come from memory when this process appended
   * or observed them, else from the stream (`readBetween`).
   */
  appendDecided<E extends SequencedEvent, R>(
    subject: string,
    msgId: string,
    basisSeq: number,
    decide: (newer: SequencedEvent[], seq: number) => Decision<E, R>,
    readBetween: ReadBetween,
  ): Promise<Appended<E> | { refusal: R }> {
    return this.serialised(subject, async () => {
      // What has been read so far is kept across attempts: a retry reads only what came since.
      const newer: SequencedEvent[] = [];
      let knownSeq = basisSeq;
      let knownStreamSeq: number | undefined;
      for (let attempt = 0; attempt < 50; attempt++) {
        const head = this.heads.get(subject) ?? (await this.readHead(subject));
        if (head.seq > knownSeq) {
          newer.push(...(await this.between(subject, knownSeq, head.seq, readBetween, knownStreamSeq)));
          knownSeq = head.seq;
          knownStreamSeq = head.streamSeq;
        }
        // Never a seq already given: the subject's newest event can have been deleted since (an
        // edit or reaction that raced its message's deletion, removed by the projection's
        // reactor), and then the head read from the stream is the one before it. The caller's
        // basis and this process's memory still know the seq it had; taking it again made gateways
        // drop the new event as one they had delivered.
        // (knownSeq is at least the head's seq here: raised to it above.)
        const decision = decide(newer, Math.max(knownSeq, this.highestKnown(subject)) + 1);
        if ('refusal' in decision) return decision;
        const outcome = await this.publishAfter(subject, msgId, head, decision.event);
        if (outcome) return outcome;
      }
      throw new Error(`could not append to ${subject}: too much contention`);
    });
  }

  private serialised<T>(subject: string, work: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(subject) ?? endOfTurn();
    const run = previous.then(work, work);
    const tail = run.catch(() => undefined);
    this.tails.set(subject, tail);
    void tail.then(() => {
      if (this.tails.get(subject) === tail) this.tails.delete(subject);
    });
    return run;
  }

  /**
   * Tells the sequencer about an event stored on `subject` by anyone (another gateway's append,
   * seen on the live fan-out), so that the next append here builds on it instead of failing its
   * expected-sequence check and re-reading the head. With members of a chat on different
   * gateways that happened to about one send in six. Older news than the cached head is ignored.
   */
  observe(subject: string, streamSeq: number, seq: number, event?: SequencedEvent): void {
    // Only subjects already cached: a chat this process never appends to needs no head.
    if (!this.heads.has(subject)) return;
    this.remember(subject, { streamSeq, seq });
    if (event) this.keep(subject, event);
  }

  /** The subject's latest seq (0 when it has no events), read from the stream. */
  async currentSeq(subject: string): Promise<number> {
    return (await this.readHead(subject)).seq;
  }

  private async appendNow<E extends SequencedEvent>(subject: string, msgId: string, build: (seq: number) => E): Promise<Appended<E>> {
    for (let attempt = 0; attempt < 50; attempt++) {
      const head = this.heads.get(subject) ?? (await this.readHead(subject));
      const outcome = await this.publishAfter(subject, msgId, head, build(head.seq + 1));
      if (outcome) return outcome;
    }
    throw new Error(`could not append to ${subject}: too much contention`);
  }

  /** One append built on `head`; undefined when another process appended first (the head is dropped). */
  private async publishAfter<E extends SequencedEvent>(subject: string, msgId: string, head: Head, event: E): Promise<Appended<E> | undefined> {
    try {
      const ack = await publishEvent(this.js, subject, event, { msgId, expectLastSubjectSequence: head.streamSeq }, this.metrics);
      if (ack.duplicate) {
        const original = await readStored<E>(this.jsm, this.stream, { seq: ack.seq });
        if (!original) throw new DuplicateGoneError(subject, ack.seq);
        return { event: original.value, streamSeq: ack.seq, duplicate: true };
      }
      this.remember(subject, { streamSeq: ack.seq, seq: event.seq });
      this.keep(subject, event);
      return { event, streamSeq: ack.seq, duplicate: false };
    } catch (error) {
      if (!(error instanceof WrongLastSequenceError)) throw error;
      // Another process appended first: forget our head and build on theirs.
      this.heads.delete(subject);
      return undefined;
    }
  }

  /** The events (afterSeq, uptoSeq] of a subject: from memory when it holds all of them, else from the stream. */
  private async between(subject: string, afterSeq: number, uptoSeq: number, readBetween: ReadBetween, afterStreamSeq?: number): Promise<SequencedEvent[]> {
    const list = this.recent.get(subject) ?? [];
    // The list is in seq order and newest last: the wanted run, if held, ends it or nearly so.
    let end = list.length;
    while (end > 0 && list[end - 1]!.seq > uptoSeq) end--;
    let start = end;
    while (start > 0 && list[start - 1]!.seq > afterSeq) start--;
    if (end - start === uptoSeq - afterSeq) return list.slice(start, end);
    const read = await readBetween(afterSeq, uptoSeq, afterStreamSeq);
    for (const event of read) this.keep(subject, event);
    return read;
  }

  /** The highest seq of the subject this process appended or observed (0 when none is held). */
  private highestKnown(subject: string): number {
    return this.recent.get(subject)?.at(-1)?.seq ?? 0;
  }

  private keep(subject: string, event: SequencedEvent): void {
    let list = this.recent.get(subject);
    if (!list) this.recent.set(subject, (list = []));
    // Usually the newest: append; else insert in place (seq order), never twice.
    let at = list.length;
    while (at > 0 && list[at - 1]!.seq > event.seq) at--;
    if (at > 0 && list[at - 1]!.seq === event.seq) return;
    list.splice(at, 0, event);
    if (list.length > RECENT_PER_SUBJECT) list.splice(0, list.length - RECENT_PER_SUBJECT);
  }

  private async readHead(subject: string): Promise<Head> {
    const last = await lastOnSubject(this.jsm, this.stream, subject);
    // An empty subject expects "no message" (stream seq 0) but continues after its floor. So does
    // one whose newest message NATS 2.9.10 forgot (lastOnSubject), after the newest it holds.
    const head = last
      ? { streamSeq: last.indexed ? last.stored.seq : 0, seq: last.stored.json<SequencedEvent>().seq }
      : { streamSeq: 0, seq: (await this.options.floor?.(subject)) ?? 0 };
    this.heads.delete(subject); // the stream's own answer replaces whatever was cached
    this.remember(subject, head);
    return head;
  }

  /**
   * Caches a subject's head, unless a newer one is cached already (the live fan-out may show a
   * newer append before our own ack arrives). A conflict deletes the head before re-reading it.
   */
  private remember(subject: string, head: Head): void {
    const cached = this.heads.get(subject);
    if (cached && cached.streamSeq >= head.streamSeq) return;
    if (this.heads.size >= this.maxCachedHeads && !this.heads.has(subject)) {
      // Drop the oldest entry (Map keeps insertion order): a miss only costs one read.
      const oldest = this.heads.keys().next().value;
      if (oldest !== undefined) {
        this.heads.delete(oldest);
        this.recent.delete(oldest);
      }
    }
    this.heads.delete(subject);
    this.heads.set(subject, head);
  }
}
