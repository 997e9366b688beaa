import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename } from 'node:fs/promises';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { headers as natsHeaders } from '@nats-io/transport-node';
import type { PubAck } from '@nats-io/jetstream';
import { readStream, readStreamSync, streamConfig, type Bus } from '@parley/bus';
import type { StreamDeclaration } from '@parley/contracts';

/**
 * Streams are exported with an ordered consumer into NDJSON, one line per stored message:
 * `{seq, subject, time, headers, data}` with the subject WITHOUT its namespace prefix and the
 * payload in base64. Unlike the JetStream snapshot API (which restores a stream under its own
 * name and subjects only), this lets a backup be restored into a different namespace, which is
 * what verify does on every run (docs/decisions.md).
 */
export interface ExportedMessage {
  seq: number;
  subject: string;
  /** When JetStream stored it (RFC 3339); kept for the record: a re-publish gets a new time. */
  time: string;
  headers?: [string, string][];
  data: string;
}

/** Digest over what a restore must reproduce exactly: sequence, namespace-free subject, payload. */
export class StreamDigest {
  private readonly hash = createHash('sha256');
  add(seq: number, subject: string, data: Uint8Array): void {
    this.hash.update(`${seq} ${subject} ${data.length}\n`);
    this.hash.update(data);
  }
  hex(): string {
    return this.hash.digest('hex');
  }
}

function relative(subject: string, namespace: string): string {
  const prefix = `${namespace}.`;
  if (!subject.startsWith(prefix)) throw new Error(`subject ${subject} is outside namespace ${namespace}`);
  return subject.slice(prefix.length);
}

/**
 * Exports one stream into an NDJSON file, up to `lastSeq`; returns the message count, the digest
 * and the sequence the export ends at.
 *
 * `oneMessagePerSubject` (a stream keeping only each subject's newest message, as receipts): read
 * on past `lastSeq` until nothing is pending. A message stored before the backup at or below
 * `lastSeq` that a newer one replaced while the export ran is gone from the stream, and its
 * replacement lies past `lastSeq`: read only up to it, the archive held neither (nor the dump, if
 * it was not projected yet), and an acknowledged receipt was lost (found in review). Read until
 * caught up, every subject's newest message at that moment has been read (the reader passed its
 * place after it was stored, and it was never deleted), and the export ends there. An earlier
 * message of a subject that a later one read here replaces is then dropped from the file, since a
 * restored stream cannot hold both; only messages past `lastSeq` can replace one (those at or
 * below it were all stored, each replacing its predecessors, before the read began).
 */
export async function exportStream(
  bus: Bus,
  namespace: string,
  stream: string,
  lastSeq: number,
  file: string,
  options: { oneMessagePerSubject?: boolean } = {},
): Promise<{ messages: number; digest: string; lastSeq: number }> {
  const out = createWriteStream(file);
  const digest = new StreamDigest();
  const catchUp = options.oneMessagePerSubject === true && lastSeq > 0;
  /** Subjects of the messages read past lastSeq, and the newest sequence of each. */
  const newer = new Map<string, number>();
  let end = lastSeq;
  const messages = await readStream(bus.js, stream, { lastSeq: catchUp ? Number.MAX_SAFE_INTEGER : lastSeq }, async (msg) => {
    const subject = relative(msg.subject, namespace);
    digest.add(msg.seq, subject, msg.data);
    if (msg.seq > lastSeq) newer.set(subject, msg.seq);
    end = Math.max(end, msg.seq);
    const line: ExportedMessage = { seq: msg.seq, subject, time: msg.timestamp, data: Buffer.from(msg.data).toString('base64') };
    if (msg.headers) {
      const pairs: [string, string][] = [];
      for (const key of msg.headers.keys()) for (const value of msg.headers.values(key)) pairs.push([key, value]);
      line.headers = pairs;
    }
    if (!out.write(`${JSON.stringify(line)}\n`)) await once(out, 'drain');
  });
  out.end();
  await once(out, 'finish');
  if (newer.size === 0) return { messages, digest: digest.hex(), lastSeq: end };
  return { ...(await dropReplaced(file, newer)), lastSeq: end };
}

/** Rewrites an export without the messages a later one of the same subject (in `newest`) replaces; the count and digest of what is left. */
async function dropReplaced(file: string, newest: Map<string, number>): Promise<{ messages: number; digest: string }> {
  const kept = `${file}.kept`;
  const out = createWriteStream(kept);
  const digest = new StreamDigest();
  let messages = 0;
  for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
    if (!text) continue;
    const line = JSON.parse(text) as ExportedMessage;
    if ((newest.get(line.subject) ?? 0) > line.seq) continue;
    digest.add(line.seq, line.subject, Buffer.from(line.data, 'base64'));
    messages++;
    if (!out.write(`${text}\n`)) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  await rename(kept, file);
  return { messages, digest: digest.hex() };
}

/** Recomputes a restored stream's digest (verify), reading it the way the export did. */
export async function digestStream(bus: Bus, namespace: string, stream: string, lastSeq: number): Promise<{ messages: number; digest: string }> {
  const digest = new StreamDigest();
  const messages = await readStreamSync(bus.js, stream, { lastSeq }, (msg) => digest.add(msg.seq, relative(msg.subject, namespace), msg.data));
  return { messages, digest: digest.hex() };
}

/**
 * Headers not carried over on import: the message id (a repeat within the duplicate window would be
 * dropped and shift every later sequence), expectations (they held when the event was first
 * stored, not against a half-imported stream) and rollups (their purge already shaped the export).
 */
const DROPPED_HEADERS = /^(Nats-Msg-Id|Nats-Expected-.*|Nats-Rollup)$/i;

/** Publishes in flight at once while importing: enough to keep NATS busy, bounded for memory. */
const WINDOW = 1000;

/**
 * Adds an exported stream's messages to a stream that is kept (the target's erasure ledger and
 * revocations on a restore --force): each on its subject, deduplicated by its place in the
 * archive. New sequences, none of them purged: what the target holds stays, and what only the
 * archive held is added.
 */
export async function mergeStream(bus: Bus, stream: string, namespace: string, file: string): Promise<number> {
  async function* fromFile() {
    for await (const text of createInterface({ input: createReadStream(file), crlfDelay: Infinity })) {
      if (!text) continue;
      const line = JSON.parse(text) as ExportedMessage;
      yield { subject: `${namespace}.${line.subject}`, data: Buffer.from(line.data, 'base64'), msgID: `restore-merge:${line.subject}:${line.seq}` };
    }
  }
  return addWhereMissing(bus, stream, fromFile());
}

/**
 * Copies another namespace's stream into the same stream of `namespace`, each message on its
 * subject there, a subject the target holds already left as it is (restore elsewhere: the
 * source's revocations). Only for streams whose sequences nothing refers to.
 */
export async function copyStream(bus: Bus, from: { stream: string; namespace: string }, to: { stream: string; namespace: string }): Promise<number> {
  const info = await bus.jsm.streams.info(from.stream);
  const read: { subject: string; data: Uint8Array; msgID: string }[] = [];
  await readStreamSync(bus.js, from.stream, { lastSeq: info.state.messages > 0 ? info.state.last_seq : 0 }, (msg) => {
    read.push({ subject: `${to.namespace}.${relative(msg.subject, from.namespace)}`, data: msg.data, msgID: `restore-copy:${from.namespace}:${msg.seq}` });
  });
  return addWhereMissing(bus, to.stream, read);
}

/**
 * Publishes each message whose subject `stream` holds nothing on yet: a subject the stream has
 * already stays as it is there (the kept one is the newer of the two). Each with its msgID, so a
 * restore run again adds nothing twice. How many were added.
 */
async function addWhereMissing(bus: Bus, stream: string, messages: Iterable<{ subject: string; data: Uint8Array; msgID: string }> | AsyncIterable<{ subject: string; data: Uint8Array; msgID: string }>): Promise<number> {
  let added = 0;
  for await (const m of messages) {
    if (await bus.jsm.streams.getMessage(stream, { last_by_subj: m.subject }).catch(() => null)) continue;
    const ack = await bus.js.publish(m.subject, m.data, { msgID: m.msgID });
    if (!ack.duplicate) added++;
  }
  return added;
}

export class SequenceMismatchError extends Error {
  override name = 'SequenceMismatchError';
}

/**
 * Imports an exported stream into `namespace`, with every message at its original stream
 * sequence, because projection checkpoints and rows' `stream_seq` refer to those sequences.
 *
 * JetStream assigns sequences itself, so the gaps of the original (deleted messages, subjects
 * capped at one message) are recreated: a leading gap by purging the empty stream up to the first
 * sequence (the stream then continues there), inner and trailing gaps by publishing filler
 * messages on a subject of their own and purging that subject at the end. Every ack's sequence is
 * checked; a mismatch (someone else publishing into the target) stops the restore.
 */
export async function importStream(
  bus: Bus,
  decl: StreamDeclaration,
  namespace: string,
  file: string,
  state: { firstSeq: number; lastSeq: number },
): Promise<number> {
  const gapSubject = `${namespace}.restoregap.${decl.name}`;
  const config = streamConfig(decl);
  await bus.jsm.streams.add({ ...config, subjects: [...decl.subjects, gapSubject] });
  let next = 1;
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  const publish = async (subject: string, data: Uint8Array, hdrs: ReturnType<typeof natsHeaders> | undefined): Promise<void> => {
    const expected = next++;
    const p = bus.js
      .publish(subject, data, hdrs ? { headers: hdrs } : {})
      .then((ack: PubAck) => {
        if (ack.seq !== expected) throw new SequenceMismatchError(`${decl.name}: message stored at sequence ${ack.seq}, expected ${expected}; is something else publishing into the target namespace?`);
      })
      .catch((error: Error) => {
        failure ??= error;
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= WINDOW) await Promise.race(inFlight);
    if (failure) throw failure;
  };
  const empty = new Uint8Array();
  const fillTo = async (seq: number) => {
    if (next === 1 && seq > 1) {
      await bus.jsm.streams.purge(decl.name, { seq });
      next = seq;
    }
    while (next < seq) await publish(gapSubject, empty, undefined);
  };

  let count = 0;
  const lines = createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const text of lines) {
    if (!text) continue;
    const line = JSON.parse(text) as ExportedMessage;
    await fillTo(line.seq);
    let hdrs: ReturnType<typeof natsHeaders> | undefined;
    for (const [k, v] of line.headers ?? []) {
      if (DROPPED_HEADERS.test(k)) continue;
      hdrs ??= natsHeaders();
      hdrs.append(k, v);
    }
    await publish(`${namespace}.${line.subject}`, Buffer.from(line.data, 'base64'), hdrs);
    count++;
  }
  // The end of the stream as it was, so the next event gets a sequence above every checkpoint.
  await fillTo(state.lastSeq + 1);
  await Promise.all(inFlight);
  if (failure) throw failure;
  await bus.jsm.streams.purge(decl.name, { filter: gapSubject });
  const info = await bus.jsm.streams.info(decl.name);
  await bus.jsm.streams.update(decl.name, { ...info.config, subjects: decl.subjects });
  if (info.state.last_seq !== state.lastSeq) {
    throw new SequenceMismatchError(`${decl.name}: restored up to sequence ${info.state.last_seq}, the backup ends at ${state.lastSeq}`);
  }
  return count;
}
