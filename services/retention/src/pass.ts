import { callRpc, InvalidRequestError, chatSnapshotOf, deleteStreamSequences, deleteSubjectMessages, eachConcurrently, edgeBytesFor, eraseBeforePurge, erasesPurgeEdge, publishEvent, purgePaced, purgeStepFor, WrongLastSequenceError, type Bus, type PurgeEdge } from '@parley/bus';
import { foldSnapshot } from '@parley/chat-domain';
import { ChatWriter, chatSequencer, expiryBasis } from '@parley/chat-writer';
import {
  buildMeta,
  MAX_RPC_BATCH,
  newId,
  streamName,
  subjects,
  type AuditEntriesExpired,
  type ChatEvent,
  type ChatSnapshot,
  type ReadPositionsExpired,
  type ResetTokensExpired,
  type StreamKey,
} from '@parley/contracts';
import type { Logger } from '@parley/log';
import { cutoffsAt, expiryChunks, type Cutoffs, type RetentionDays } from './policy.js';
import { reapplyLedger, type LedgerReport } from './ledger.js';
import { waitForProjectors, waitForReactors } from './projectors.js';
import { scanExpired } from './scan.js';
import { expiredTombstones } from './tombstones.js';

export interface PassOptions {
  now: Date;
  dryRun: boolean;
  days: RetentionDays;
  batchMessages: number;
  deleteConcurrency: number;
  projectionTimeoutMs: number;
  orphanFileGraceMs: number;
  /** Stream sequences per purge request of the chats stream (0: all in one request; 'auto' by server version: purgeStepFor). */
  purgeChunk?: number | 'auto';
  /** Messages in flight to the scan's reader (readStream's buffer; default 5,000). */
  scanBuffer?: number;
  /** Overwrite deleted stream messages (JetStream erase) rather than only mark them deleted. */
  eraseStreamMessages?: boolean;
  /** Whether the edge below each purge point is erased first (RETENTION_PURGE_EDGE; default 'auto': erasesPurgeEdge). */
  purgeEdge?: PurgeEdge;
  /** Import this namespace's erasure ledger first (the system a restored backup came from). */
  ledgerFrom?: string | undefined;
}

/** What a pass deleted (or, dry, would delete), per data type: rows, stream events, files. */
export type Counts = Record<string, number>;

export interface PassReport {
  now: string;
  dryRun: boolean;
  cutoffs: Record<keyof Cutoffs, string>;
  /** Rows in Postgres, by data type. */
  rows: Counts;
  /** Events removed from each stream. */
  streamEvents: Counts;
  /** Attachment files removed from the store that had lost their row (orphans). */
  orphanFiles: number;
  chatsTouched: number;
  ledger: LedgerReport;
  /** Wall time of each step, for finding where a slow pass spends it. */
  stepsMs: Record<string, number>;
  /** Stream sequences per purge request of the chats stream (0: one request), as RETENTION_PURGE_CHUNK chose. */
  purgeStep: number;
  /** Whether the edge below each purge point was erased first (RETENTION_PURGE_EDGE). */
  edgeErased: boolean;
  durationMs: number;
}

/** Chat events that shape the chat (folded into its ChatSnapshot); the rest are part of a message's life. */
const STRUCTURE = new Set<ChatEvent['type']>(['ChatCreated', 'ChatRenamed', 'MemberAdded', 'MemberRemoved', 'MemberErased']);
/** Chats whose MessagesExpired events are appended at once. */
const EXPIRY_CONCURRENCY = 8;
/** Snapshots read and written at once (one direct get, then one publish each). */
const SNAPSHOT_CONCURRENCY = 16;

/** What the purged part of one chat's subject holds, for its snapshot. */
interface ChatPrefix {
  /** Its structure events, in order. */
  structure: ChatEvent[];
  /** The highest chat seq and the latest message time in it. */
  lastSeq: number;
  lastActivityAt: string;
  /** Its first stream sequence: where the purge must stop if no snapshot can be made. */
  firstStreamSeq: number;
}

interface ChatExpiry {
  /** Chat seqs of expired messages (MessageSent, PollPosted), ascending. */
  messageSeqs: number[];
  /** The highest chat seq among them. */
  upToSeq: number;
  /** True when only earlier passes' MessagesExpired markers expired: no new event is needed. */
  markersOnly: boolean;
  /** How far earlier passes' markers (among the expired events) expired the chat. */
  expiredUpToSeq: number;
}

export interface PassDeps {
  bus: Bus;
  namespace: string;
  log: Logger;
}

/**
 * One retention pass (services/retention, `npm run cleanup`):
 *
 * 0. Re-apply the erasure ledger (accounts and messages erased on request that a restore brought back).
 * 1. Scan each stream's expired part (everything stored before the class's cutoff).
 * 2. Ask the owning services what rows that is (the dry run stops here and reports).
 * 3. Publish deletion events: MessagesExpired per chat (bounded chunks), and a cutoff event for
 *    each of the audit log, reset tokens and read receipts that has expired rows or events. The services' projectors delete the rows,
 *    files, cache entries and search entries, in bounded batches.
 * 4. Wait until those projectors have applied them.
 * 5. Compact the streams: fold each affected chat's structure into its ChatSnapshot, then purge
 *    every chat event older than the cutoff with one request (issue 18: O(1) requests for the
 *    stream, O(chats) snapshots, instead of one delete per event); purge the other classes below
 *    their cutoff. A replay (`npm run rebuild`) or a resume then cannot bring anything back.
 * 6. Sweep attachment files whose row is gone (left by a crash between commit and unlink).
 *
 * Every step is idempotent, so a pass that died half-way converges when it runs again.
 */
export async function runRetentionPass(deps: PassDeps, options: PassOptions): Promise<PassReport> {
  const started = Date.now();
  const stepsMs: Record<string, number> = {};
  let stepStart = started;
  const step = (name: string) => {
    const now = Date.now();
    stepsMs[name] = now - stepStart;
    stepStart = now;
  };
  const { bus, namespace: ns, log } = deps;
  // 0. Erased on request stays erased, also after a restore: the ledger goes first.
  const ledger = await reapplyLedger(bus, ns, { ledgerFrom: options.ledgerFrom, dryRun: options.dryRun });
  step('ledger');
  const cutoffs = cutoffsAt(options.now, options.days);
  const stream = (key: StreamKey) => streamName(ns, key);

  // 1. Scan.
  const chats = new Map<string, ChatExpiry>();
  const prefixes = new Map<string, ChatPrefix>();
  /** Chat events below the cutoff: what the purge removes. */
  let chatEventsBelow = 0;
  /** Upload records by attachment id: those older than the attachment cutoff go, and those of expired messages. */
  const uploads = new Map<string, { seqs: number[]; expired: boolean; last: { seq: number; event: { type: string } } }>();
  const expiredAttachments = new Set<string>();
  const chatPrefix = `${ns}.chat.`;
  const attachmentPrefix = `${ns}.attachment.`;
  const snapshotPrefix = `${ns}.chatsnap.`;
  const claimPrefix = `${ns}.chatclaim.`;
  /** Messages below the cutoff that must outlive it (claims, snapshots, uploads still in use): re-published before the purge. */
  const carried = new Map<string, { seq: number; event: { type: string } }>();
  /** The lowest stream sequence the whole-stream purge must keep (a message of unknown kind). */
  let keepFrom = Number.POSITIVE_INFINITY;
  /** Messages of known kinds after it: deleted one by one instead of purged (never a subject purge: see below). */
  const afterKept: number[] = [];
  const attachmentCutoff = cutoffs.attachments.getTime();
  const knownPrefixes = [chatPrefix, attachmentPrefix, claimPrefix, snapshotPrefix];
  const chatsScan = await scanExpired(bus.js, bus.jsm, stream('chats'), cutoffs.messages, (stored) => {
    const known = knownPrefixes.some((prefix) => stored.subject.startsWith(prefix));
    if (!known) {
      keepFrom = Math.min(keepFrom, stored.seq);
      return;
    }
    if (Number.isFinite(keepFrom)) afterKept.push(stored.seq);
    if (stored.subject.startsWith(attachmentPrefix)) {
      const id = stored.subject.slice(attachmentPrefix.length);
      const last = { seq: stored.seq, event: stored.json<{ type: string }>() };
      const upload = uploads.get(id) ?? { seqs: [], expired: false, last };
      upload.seqs.push(stored.seq);
      upload.expired ||= stored.storedAt < attachmentCutoff;
      upload.last = last;
      uploads.set(id, upload);
      return;
    }
    if (stored.subject.startsWith(claimPrefix) || stored.subject.startsWith(snapshotPrefix)) {
      // A direct chat's claim and a chat's snapshot live as long as the chat: carried forward.
      carried.set(stored.subject, { seq: stored.seq, event: stored.json<{ type: string }>() });
      return;
    }
    const event = stored.json<ChatEvent>();
    chatEventsBelow++;
    const prefix = prefixes.get(event.chatId) ?? { structure: [], lastSeq: 0, lastActivityAt: '', firstStreamSeq: stored.seq };
    prefix.lastSeq = Math.max(prefix.lastSeq, event.seq);
    if (STRUCTURE.has(event.type)) prefix.structure.push(event);
    if ((event.type === 'MessageSent' || event.type === 'PollPosted') && event.meta.occurredAt > prefix.lastActivityAt) prefix.lastActivityAt = event.meta.occurredAt;
    prefixes.set(event.chatId, prefix);
    if (STRUCTURE.has(event.type)) return;
    const chat = chats.get(event.chatId) ?? { messageSeqs: [], upToSeq: 0, markersOnly: true, expiredUpToSeq: 0 };
    chat.upToSeq = Math.max(chat.upToSeq, event.seq);
    if (event.type === 'MessageSent' || event.type === 'PollPosted') chat.messageSeqs.push(event.seq);
    if (event.type === 'MessageSent') for (const id of event.data.attachmentIds) expiredAttachments.add(id);
    if (event.type !== 'MessagesExpired') chat.markersOnly = false;
    else chat.expiredUpToSeq = Math.max(chat.expiredUpToSeq, event.data.upToSeq);
    chats.set(event.chatId, chat);
  }, options.scanBuffer);
  if (Number.isFinite(keepFrom)) log.warn({ streamSeq: keepFrom }, 'the chats stream holds a message of a kind this version does not write: it is kept, and the known messages after it are deleted one by one');
  // A file sent again (or forwarded) after the message it first came with is still carried by a
  // message this pass does not expire: its record stays. Dropped, the row outlived it until a
  // rebuild, which lost the file from that message, and the next pass deleted the file itself.
  const dropping = new Set([...uploads].filter(([id, u]) => u.expired || expiredAttachments.has(id)).map(([id]) => id));
  const droppingIds = [...dropping];
  const stillCarried = new Set<string>();
  try {
    for (let i = 0; i < droppingIds.length; i += MAX_RPC_BATCH) {
      const { kept } = await callRpc(bus, ns, 'messages.attachmentsKept', { attachmentIds: droppingIds.slice(i, i + MAX_RPC_BATCH), fromStreamSeq: chatsScan.firstFreshSeq }, 60_000);
      for (const id of kept) stillCarried.add(id);
    }
  } catch (error) {
    if (!/permission/i.test(`${(error as Error).name} ${(error as Error).message}`)) throw error;
    // A NATS authorization made before this version: the pass goes on as before, and says what to change.
    log.warn({ err: (error as Error).message }, 'could not ask which expiring files are sent again (a NATS authorization made before this version: add <namespace>.rpc.messages.attachmentsKept to the retention user\'s publish permissions and reload NATS, docs/retention.md): their upload records go with their first message');
  }
  const attachmentSeqs = [...uploads].flatMap(([id, u]) => (dropping.has(id) && !stillCarried.has(id) ? u.seqs : []));
  // An upload record below the cutoff whose message is fresh (uploaded the day before it), or that
  // a fresh message carries again, stays: carried to the head like a claim, so that it does not
  // hold the purge back.
  for (const [id, u] of uploads) if (!dropping.has(id) || stillCarried.has(id)) carried.set(`${attachmentPrefix}${id}`, u.last);
  const tails: Record<'audit' | 'resets' | 'receipts', { firstFreshSeq: number; expired: number; below: number }> = {
    audit: { firstFreshSeq: 0, expired: 0, below: 0 },
    resets: { firstFreshSeq: 0, expired: 0, below: 0 },
    receipts: { firstFreshSeq: 0, expired: 0, below: 0 },
  };
  for (const [key, cutoff] of [['audit', cutoffs.auditLog], ['resets', cutoffs.resetTokens], ['receipts', cutoffs.readReceipts]] as const) {
    const tail = tails[key];
    const end = await scanExpired(bus.js, bus.jsm, stream(key), cutoff, (stored) => {
      // Earlier passes' own cutoff events are not data; they go with the rest but are not counted.
      if (!stored.subject.includes('.retention')) tail.expired++;
    }, options.scanBuffer);
    tail.firstFreshSeq = end.firstFreshSeq;
    tail.below = end.expired;
  }

  step('scan');

  // 2. What that is in rows. First the tombstones the scan cannot see (their MessageSent left
  // the stream with the deletion): each such chat expires up to its newest expired one, also a
  // chat the scan found only structure events of, or nothing at all (expiredTombstones).
  for (const [chatId, seq] of await expiredTombstones(deps, cutoffs.messages)) {
    const chat = chats.get(chatId) ?? { messageSeqs: [], upToSeq: 0, markersOnly: true, expiredUpToSeq: 0 };
    if (seq <= chat.expiredUpToSeq) continue; // an earlier pass's expiry covers it (not yet projected)
    chat.upToSeq = Math.max(chat.upToSeq, seq);
    chat.markersOnly = false;
    chats.set(chatId, chat);
  }
  const expiring = [...chats.entries()].filter(([, c]) => !c.markersOnly);
  const { rows, heads } = await previewRows(deps, expiring.map(([chatId, c]) => ({ chatId, upToSeq: c.upToSeq })), cutoffs);
  step('preview');
  const streamEvents: Counts = {
    chats: chatEventsBelow + attachmentSeqs.length,
    audit: tails.audit.expired,
    resets: tails.resets.expired,
    receipts: tails.receipts.expired,
  };
  const natsVersion = bus.nc.info?.version;
  const purgeStep = purgeStepFor(options.purgeChunk ?? 'auto', natsVersion);
  const erase = options.eraseStreamMessages ?? true;
  const purgeEdge = options.purgeEdge ?? 'auto';
  const eraseEdge = erase && erasesPurgeEdge(purgeEdge, natsVersion);
  const report = (orphanFiles: number): PassReport => ({
    now: options.now.toISOString(),
    dryRun: options.dryRun,
    cutoffs: Object.fromEntries(Object.entries(cutoffs).map(([k, v]) => [k, (v as Date).toISOString()])) as PassReport['cutoffs'],
    rows,
    streamEvents,
    orphanFiles,
    chatsTouched: expiring.length,
    ledger,
    stepsMs,
    purgeStep,
    edgeErased: eraseEdge,
    durationMs: Date.now() - started,
  });
  if (options.dryRun) return report(0);

  // 3. Deletion events.
  // Through the chat writer, like every writer of chat events: the decider decides ExpireMessages.
  const sequencer = chatSequencer(bus, ns);
  const writer = new ChatWriter({ bus, namespace: ns, sequencer });
  const published: Partial<Record<'chats' | 'audit' | 'resets' | 'receipts', number>> = {};
  // Chats side by side (each chat's chunks in order): one append waits for its ack before the next.
  await eachConcurrently(expiring, EXPIRY_CONCURRENCY, async ([chatId, chat]) => {
    // Not the stream's head alone: the chat's newest event may have been deleted from the stream
    // (a reaction or edit that raced its message's deletion, removed by the stream-content
    // reactor), and this process has no memory of the chat, so the stream's head alone gave the
    // expiry that event's seq again, and gateways dropped the expiry as delivered. The projection
    // counted that event (the reactor deletes only what it projected). Read once per chat: each
    // chunk's expiry is the head after it, and a writer appending meanwhile is folded in by the
    // chat writer (the basis is a lower bound).
    let head = Math.max(await sequencer.currentSeq(subjects.chat(ns, chatId)), heads.get(chatId) ?? 0);
    for (const upToSeq of expiryChunks(chat.messageSeqs, chat.upToSeq, options.batchMessages)) {
      // Everything older than the cutoff goes with the purge in step 5: the projection queues only
      // the newer events that refer to these messages for deletion one by one.
      const command = { type: 'ExpireMessages' as const, upToSeq, cutoff: cutoffs.messages.toISOString() };
      const appended = await writer.execute(chatId, command, expiryBasis(head, chat.expiredUpToSeq), { msgId: `expire:${chatId}:${upToSeq}`, actorId: null, occurredAt: options.now });
      if ('refusal' in appended) continue; // expired already (a pass that died after appending)
      head = Math.max(head, appended.event.seq);
      chat.expiredUpToSeq = upToSeq;
      published.chats = Math.max(published.chats ?? 0, appended.streamSeq);
    }
  });
  const cutoffEvent = <T extends AuditEntriesExpired | ResetTokensExpired | ReadPositionsExpired>(type: T['type'], cutoff: Date) =>
    ({ type, version: 1, data: { cutoff: cutoff.toISOString() }, meta: buildMeta({ eventId: newId(), occurredAt: options.now, actorId: null, correlationId: newId() }) }) as T;
  for (const [key, subject, type, cutoff, expired] of [
    ['audit', subjects.auditRetention(ns), 'AuditEntriesExpired', cutoffs.auditLog, rows.auditEntries],
    ['resets', subjects.resetRetention(ns), 'ResetTokensExpired', cutoffs.resetTokens, rows.resetTokens],
    ['receipts', subjects.receiptRetention(ns), 'ReadPositionsExpired', cutoffs.readReceipts, rows.readReceipts],
  ] as const) {
    // Also when the preview counted no row but the scan found expired events: a lagging projector
    // inserts their rows after the preview, and the purge (step 5) waits for it to do so. The
    // cutoff event follows those events in the stream, so it deletes them; without it the rows
    // outlived the period until the next pass.
    if (!expired && tails[key].expired === 0) continue;
    const ack = await publishEvent(bus.js, subject, cutoffEvent(type, cutoff), { msgId: `expire:${key}:${cutoff.toISOString()}` });
    published[key] = ack.seq;
  }

  step('events');

  // 4. The projections apply the deletion events while step 5 compacts the streams: the rows and
  // the old events go side by side (Postgres and NATS), not one after the other. Awaited after
  // step 5; until then a failure of its own is held, not reported as unhandled.
  const projected = waitForProjectors(bus.jsm, ns, published, options.projectionTimeoutMs);
  projected.catch(() => undefined);

  // 5. Compact the streams. First each chat's structure goes into its snapshot, then its old
  // events go: a crash in between leaves a snapshot that the remaining events replay onto without
  // change (foldSnapshot and the projection skip or repeat them idempotently).
  const purgeBelowSeq = await writeSnapshots(deps, stream('chats'), prefixes, chatsScan.firstFreshSeq, options.now);
  // Claims, uploads still in use and the snapshots this pass did not replace go to the head (the
  // old copy goes with the purge), so that everything below the cutoff can go with a purge of the
  // whole stream, which drops whole message blocks (their bytes too). Never a purge filtered by
  // subject, nor a rollup: NATS 2.9.10 moves every consumer whose filter covers the subject past
  // it, and the projections would skip live events (docs/reliability.md, "Subject purges skip events").
  await carryForward(deps, stream('chats'), [...carried].filter(([subject]) => !subject.startsWith(snapshotPrefix) || !prefixes.has(subject.slice(snapshotPrefix.length))));
  const wholeBelow = Math.min(purgeBelowSeq, keepFrom);
  // A purge leaves on disk the bodies below its point in the block it ends in, unless it frees about
  // half of that block: the last block's worth below the point (5 MiB from NATS 2.11 on:
  // edgeBytesFor) is erased first (eraseBeforePurge), where RETENTION_PURGE_EDGE says so
  // (erasesPurgeEdge).
  if (erase && !eraseEdge && purgeEdge === 'auto') {
    log.warn({ natsVersion }, 'this NATS version rewrites a whole block for each erasure: the pass leaves the purged head of the block each purge ends in on disk until a later purge drops that block; RETENTION_PURGE_EDGE=erase erases it, paced (docs/retention.md#stream-compaction)');
  }
  // A projector still behind a purge point would skip what the purge removes (a chat's creation
  // and members among them): each must have passed the points first. Normally they passed them
  // long ago (what goes is old); a lagging or rebuilding one is waited for.
  // Only where something goes (a stream with nothing old may have no projector's consumer yet).
  const passedBy: Parameters<typeof waitForProjectors>[2] = {};
  if (chatsScan.expired > 0) passedBy.chats = wholeBelow - 1;
  for (const key of ['audit', 'resets', 'receipts'] as const) if (tails[key].below > 0) passedBy[key] = tails[key].firstFreshSeq - 1;
  await waitForProjectors(bus.jsm, ns, passedBy, options.projectionTimeoutMs);
  const dropBelow = async (name: string, below: number, step: number) =>
    (eraseEdge && below > 1 ? await eraseBeforePurge(bus.jsm, name, below, options.deleteConcurrency, edgeBytesFor(natsVersion)) : 0) + (await purgePaced(bus.jsm, name, below, step));
  const chatEventsPurged = await dropBelow(stream('chats'), wholeBelow, purgeStep);
  // After a message of unknown kind that stays (none in this version's stream), one by one.
  const attachmentsRemoved = await deleteStreamSequences(
    bus.jsm,
    stream('chats'),
    [...new Set([...attachmentSeqs, ...afterKept.filter((seq) => seq < purgeBelowSeq)])].filter((seq) => seq >= wholeBelow),
    options.deleteConcurrency,
    erase,
  );
  streamEvents.chats = chatEventsPurged + attachmentsRemoved;
  for (const key of ['audit', 'resets', 'receipts'] as const) streamEvents[key] = await dropBelow(stream(key), tails[key].firstFreshSeq, 0);

  step('compaction');

  // 4, the rest of the wait: what the projections had left when the compaction ended.
  await projected;
  step('projection');

  // 5b. What the deletions started in the messages service's reactors (files, dependent events):
  // only when this pass expired chat content (nothing else queues work there).
  if (published.chats !== undefined) await waitForReactors(bus, ns, options.projectionTimeoutMs, log);
  step('reactors');

  // 6. Orphan files.
  const { deleted: orphanFiles } = await callRpc(bus, ns, 'messages.sweepFiles', { olderThan: new Date(Date.now() - options.orphanFileGraceMs).toISOString() }, 120_000);
  step('orphanFiles');
  log.debug({ chats: expiring.length }, 'retention pass compacted the streams');
  return report(orphanFiles);
}

/**
 * Writes the snapshot of every chat with events below `firstFreshSeq`: its last snapshot with the
 * structure events since folded in (rolled up: only the newest stays on its subject). Returns
 * where the purge of chat events may start: `firstFreshSeq`, or lower when a chat's snapshot
 * cannot be made (its ChatCreated is gone and it has no snapshot, which no pass of this design
 * leaves behind): those events are kept rather than lose the chat.
 */
async function writeSnapshots(deps: PassDeps, chatsStream: string, prefixes: Map<string, ChatPrefix>, firstFreshSeq: number, now: Date): Promise<number> {
  const { bus, namespace: ns, log } = deps;
  let purgeBelowSeq = firstFreshSeq;
  await eachConcurrently([...prefixes], SNAPSHOT_CONCURRENCY, async ([chatId, prefix]) => {
    const prior = await chatSnapshotOf(bus, chatsStream, ns, chatId);
    if (prior && prior.data.seq >= prefix.lastSeq) return; // a rerun: written already
    const folded = foldSnapshot(prior?.data ?? null, prefix.structure);
    if (!folded) {
      log.warn({ chatId }, 'chat has no ChatCreated and no snapshot: its old events are kept');
      purgeBelowSeq = Math.min(purgeBelowSeq, prefix.firstStreamSeq);
      return;
    }
    const data: ChatSnapshot['data'] = {
      ...folded,
      seq: Math.max(folded.seq, prefix.lastSeq),
      lastActivityAt: prefix.lastActivityAt > folded.lastActivityAt ? prefix.lastActivityAt : folded.lastActivityAt,
    };
    const snapshot: ChatSnapshot = { type: 'ChatSnapshot', version: 1, data, meta: buildMeta({ eventId: newId(), occurredAt: now, actorId: null, correlationId: newId() }) };
    const ack = await publishEvent(bus.js, subjects.chatSnapshot(ns, chatId), snapshot, { msgId: `snapshot:${chatId}:${data.seq}` });
    // Latest only: the earlier ones go (by sequence, not by a rollup: see compaction above).
    await deleteSubjectMessages(bus.jsm, chatsStream, subjects.chatSnapshot(ns, chatId), ack.seq);
  });
  return purgeBelowSeq;
}

/**
 * Re-publishes messages that must outlive the purge of everything below the cutoff, unchanged (the
 * event keeps its time, so its age survives), each only while it is still its subject's last
 * message: an upload deleted meanwhile is not brought back. The old copy goes with the purge.
 */
async function carryForward(deps: PassDeps, chatsStream: string, messages: [string, { seq: number; event: { type: string } }][]): Promise<void> {
  await eachConcurrently(messages, SNAPSHOT_CONCURRENCY, async ([subject, { seq, event }]) => {
    try {
      // Its own msgId: the original's may still be inside the duplicate window.
      await publishEvent(deps.bus.js, subject, event, { msgId: `carry:${chatsStream}:${seq}`, expectLastSubjectSequence: seq });
    } catch (error) {
      if (!(error instanceof WrongLastSequenceError)) throw error; // else superseded
    }
  });
}

/**
 * The rows the pass removes, per kind, and each expiring chat's last seq as the messages projection
 * has it (`heads`: the expiry's basis, with the stream's head).
 */
async function previewRows(deps: PassDeps, chats: { chatId: string; upToSeq: number }[], cutoffs: Cutoffs): Promise<{ rows: Counts; heads: Map<string, number> }> {
  const { bus, namespace } = deps;
  const totals: Counts = { messages: 0, reactions: 0, polls: 0, pollVotes: 0, attachments: 0, readReceipts: 0 };
  const heads = new Map<string, number>();
  let askHeads = true;
  for (let i = 0; i === 0 || i < chats.length; i += MAX_RPC_BATCH) {
    const request = { chats: chats.slice(i, i + MAX_RPC_BATCH), receiptsCutoff: i === 0 ? cutoffs.readReceipts.toISOString() : null };
    const ask = () => callRpc(bus, namespace, 'messages.retentionPreview', askHeads ? { ...request, heads: true } : request, 60_000);
    // A messages service from before `heads` refuses the question as invalid: asked again without,
    // the expiry builds on the stream's head alone, as it did before (docs/reliability.md).
    const answer = await ask().catch((error: unknown) => {
      if (!askHeads || !(error instanceof InvalidRequestError)) throw error;
      askHeads = false;
      deps.log.warn({ err: error.message }, 'the messages service does not answer the chats\' last seqs (a version before this pass): expiries build on the streams\' heads alone');
      return ask();
    });
    // Tombstones are not asked for here (expiredTombstones asks): none come back.
    const { heads: page, tombstones: _none, ...counts } = answer;
    for (const [k, v] of Object.entries(counts)) totals[k] = (totals[k] ?? 0) + v;
    for (const { chatId, seq } of page ?? []) heads.set(chatId, seq);
  }
  const users = await callRpc(bus, namespace, 'users.retentionPreview', { auditCutoff: cutoffs.auditLog.toISOString(), resetCutoff: cutoffs.resetTokens.toISOString() }, 60_000);
  // Search entries live in the message rows (a generated column): they go with them.
  return { rows: { ...totals, searchEntries: totals.messages!, auditEntries: users.auditEntries, resetTokens: users.resetTokens }, heads };
}
