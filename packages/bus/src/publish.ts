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
