import { JetStreamApiError, type JetStreamClient, type JetStreamManager, type MsgRequest, type PubAck, type StoredMsg } from '@nats-io/jetstream';
import type { Metrics } from '@parley/telemetry';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { headersWithTrace, tracer } from './trace.js';

/** JetStream's error code for a failed `Nats-Expected-Last-Subject-Sequence` check. */
const WRONG_LAST_SEQUENCE = 10071;

export interface PublishOptions {
  /** `Nats-Msg-Id`: a retry with the same id inside the duplicate window is not stored twice. */
  msgId: string;
  /** Only store when the subject's last stream sequence is this (0: the subject is empty). */
  expectLastSubjectSequence?: number;
}

export interface Published {
  ack: PubAck;
}

export class WrongLastSequenceError extends Error {
  override name = 'WrongLastSequenceError';
}

/** Publishes one event as JSON, with trace headers and the event type as a header for tooling. */
export async function publishEvent(
  js: JetStreamClient,
  subject: string,
  event: { type: string },
  options: PublishOptions,
  metrics?: Metrics,
): Promise<PubAck> {
  // A producer span (messaging semantic conventions) whose context travels in the headers.
  return tracer.startActiveSpan(
    `send ${event.type}`,
    { kind: SpanKind.PRODUCER, attributes: { 'messaging.system': 'nats', 'messaging.operation.type': 'send', 'messaging.destination.name': subject, 'messaging.message.id': options.msgId } },
    async (span) => {
      try {
        return await publishInSpan(js, subject, event, options, metrics);
      } catch (error) {
        span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).name });
        throw error;
      } finally {
        span.end();
      }
    },
  );
}

async function publishInSpan(js: JetStreamClient, subject: string, event: { type: string }, options: PublishOptions, metrics?: Metrics): Promise<PubAck> {
  try {
    const ack = await js.publish(subject, JSON.stringify(event), {
      msgID: options.msgId,
      // Never `Nats-Rollup`: on NATS 2.9.10 a rollup makes consumers skip other subjects' events
      // (deleteSubjectMessages in compact.ts replaces it).
      headers: headersWithTrace({ 'Parley-Event-Type': event.type }),
      ...(options.expectLastSubjectSequence === undefined
        ? {}
        : { expect: { lastSubjectSequence: options.expectLastSubjectSequence } }),
    });
    metrics?.busPublishes.inc({ stream: ack.stream, outcome: ack.duplicate ? 'duplicate' : 'stored' });
    return ack;
  } catch (error) {
    if (error instanceof JetStreamApiError && error.code === WRONG_LAST_SEQUENCE) {
      metrics?.busPublishes.inc({ stream: 'unknown', outcome: 'conflict' });
      throw new WrongLastSequenceError(error.message);
    }
    metrics?.busPublishes.inc({ stream: 'unknown', outcome: 'error' });
    throw error;
  }
}

/**
 * The first message at or after stream sequence `seq` on the subjects matching `filter` (wildcards
 * allowed), as the stream's leader answers (STREAM.MSG.GET with `next_by_subj`, NATS 2.9+); null
 * when there is none. Not a direct get, which a replica behind the leader may answer. The client's
 * type lists `next_by_subj` for direct gets only.
 */
export function nextOnSubject(jsm: JetStreamManager, stream: string, filter: string, seq: number): Promise<StoredMsg | null> {
  return jsm.streams.getMessage(stream, { next_by_subj: filter, seq } as unknown as MsgRequest);
}

/** The newest message on a subject, and whether the server's per-subject index knows it (see lastOnSubject). */
export interface LastOnSubject {
  stored: StoredMsg;
  /**
   * False when the server answered "no message" for the subject although it holds some: then its
   * `Nats-Expected-Last-Subject-Sequence` check expects 0 for the subject until one is appended.
   */
  indexed: boolean;
}

/**
 * The newest message on `subject` (no wildcards), or null when it holds none. Not `last_by_subj`
 * alone: NATS 2.9.10 forgets a subject once its newest message is deleted (the stream-content
 * reactor deleting a chat's newest event, docs/reliability.md): `last_by_subj` answers "no
 * message" although older ones are there, and an append that expects none
 * (`Nats-Expected-Last-Subject-Sequence: 0`) is accepted, until one is appended. So "no message"
 * is checked with `next_by_subj`, and when the subject does hold messages the newest is found by a
 * binary search over stream sequences: a rare path, O(log n) gets. `direct` asks the first
 * question with a direct get (any replica may answer), for hot read paths.
 */
export async function lastOnSubject(jsm: JetStreamManager, stream: string, subject: string, options: { direct?: boolean } = {}): Promise<LastOnSubject | null> {
  const last = options.direct ? await jsm.direct.getMessage(stream, { last_by_subj: subject }) : await jsm.streams.getMessage(stream, { last_by_subj: subject });
  if (last) return { stored: last, indexed: true };
  // Usually the subject is simply empty (a chat quiet past the retention period): asked the same
  // way as the first question, so that a resume costs no request to the stream's leader for it.
  const any = options.direct ? await jsm.direct.getMessage(stream, { next_by_subj: subject, seq: 1 }) : await nextOnSubject(jsm, stream, subject, 1);
  if (!any) return null;
  let found = options.direct ? await nextOnSubject(jsm, stream, subject, any.seq) : any;
  if (!found) return null;
  // The newest is `found` or lies in [lo, hi]; nothing on the subject between found and lo.
  let lo = found.seq + 1;
  let hi = (await jsm.streams.info(stream)).state.last_seq;
  while (lo <= hi) {
    const mid = Math.floor((lo + hi) / 2);
    const probe = await nextOnSubject(jsm, stream, subject, mid);
    if (probe && probe.seq <= hi) {
      found = probe;
      lo = probe.seq + 1;
    } else {
      hi = mid - 1;
    }
  }
  return { stored: found, indexed: false };
}

/** Reads one stored message as JSON, by stream sequence or as the last one on a subject. */
export async function readStored<T>(
  jsm: JetStreamManager,
  stream: string,
  query: { seq: number } | { last_by_subj: string },
): Promise<{ streamSeq: number; value: T } | null> {
  const stored = await jsm.streams.getMessage(stream, query);
  if (!stored) return null;
  return { streamSeq: stored.seq, value: stored.json<T>() };
}

/**
 * Claims a unique key by publishing the first message on its subject. Returns null when the claim
 * was stored (the caller owns the key), or the current owner's message when somebody else holds it.
 * JetStream's expected-last-subject-sequence check makes this atomic across all replicas.
 */
export async function claimSubject<T extends { type: string }>(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  claim: T,
  msgId: string,
  metrics?: Metrics,
): Promise<{ streamSeq: number; value: T } | null> {
  try {
    // Stored, or a duplicate of this very claim (same msgId) from an earlier try: either way ours.
    await publishEvent(js, subject, claim, { msgId, expectLastSubjectSequence: 0 }, metrics);
    return null;
  } catch (error) {
    if (!(error instanceof WrongLastSequenceError)) throw error;
    const holder = await readStored<T>(jsm, stream, { last_by_subj: subject });
    if (!holder) throw new Error(`claim on ${subject} conflicted but no holder was found`, { cause: error });
    return holder;
  }
}
