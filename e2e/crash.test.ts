import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, ensureStreams, Sequencer, type Bus } from '@parley/bus';
import { buildMeta, declaredStreams, messageSent, newId, sendMessageId, streamName, subjects, type ChatCreated, type MessageDeleted } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, eventually, freePort, type TestEnv } from '@parley/testing';

const root = path.resolve(import.meta.dirname, '..');
const MESSAGES_MAIN = path.join(root, 'services/messages/dist/main.js');


function startMessages(env: Record<string, string>): { child: ChildProcess; exited: Promise<NodeJS.Signals | number | null> } {
  const child = spawn(process.execPath, [MESSAGES_MAIN], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) => child.on('exit', (code, signal) => resolve(signal ?? code)));
  return { child, exited };
}

/**
 * Promise 2 (docs/architecture.md#promises): a projector that crashes between its Postgres commit and its ack never
 * yields a second row. The messages service runs as a real process that kills itself (SIGKILL)
 * right after committing a batch and before acking it; JetStream redelivers that batch to the
 * restarted process, which must recognise every event as applied.
 */
describe('projector killed between commit and ack', () => {
  let env: TestEnv;
  let bus: Bus;
  let db: pg.Client;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'crash-test', log: createLogger({ service: 'test', level: 'silent' }) });
    await ensureStreams(bus.jsm, Object.values(declaredStreams(env.namespace)), createLogger({ service: 'test', level: 'silent' }));
    db = new pg.Client({ connectionString: env.databaseUrl });
  });
  /** A new group with one member, its `ChatCreated` appended before any service runs. */
  async function groupOfOne() {
    const sequencer = new Sequencer(bus.js, bus.jsm, streamName(env.namespace, 'chats'));
    const chatId = newId();
    const sender = newId();
    const subject = subjects.chat(env.namespace, chatId);
    await sequencer.append<ChatCreated>(subject, `created:${chatId}`, (seq) => ({
      type: 'ChatCreated',
      version: 1,
      chatId,
      seq,
      data: { type: 'group', title: 'crash', members: [{ userId: sender, role: 'owner' }], createdBy: sender },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: sender, correlationId: newId() }),
    }));
    return { sequencer, chatId, sender, subject };
  }

  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await db?.end();
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('leaves exactly one row per event after the restart', async () => {
    // Events first, service later: the first process receives them all as one batch.
    const { sequencer, chatId, sender, subject } = await groupOfOne();
    const total = 25;
    for (let i = 0; i < total; i++) {
      const command = { chatId, senderId: sender, messageId: newId(), clientMsgId: `c${i}`, body: `m${i}`, replyTo: null, attachmentIds: [], at: new Date(), eventId: newId(), correlationId: newId() };
      await sequencer.append(subject, sendMessageId(chatId, sender, command.clientMsgId), (seq) => messageSent(command, seq));
    }

    const vars = { ...env.env, METRICS_PORT: String(await freePort()), PROJECTOR_ACK_WAIT_MS: '1000' };
    const crashing = startMessages({ ...vars, PARLEY_FAULT: 'projector-crash-after-commit' });
    children.push(crashing.child);
    expect(await crashing.exited).toBe('SIGKILL');

    await db.connect();
    // Events applied by the first process: its checkpoint, and the rows it wrote.
    const committed =
      (await db.query('SELECT count(*)::int AS n FROM messages.messages')).rows[0].n +
      (await db.query('SELECT count(*)::int AS n FROM messages.chats')).rows[0].n;
    expect(committed).toBeGreaterThan(0); // the crash came after the commit...
    const pending = await bus.jsm.consumers.info(streamName(env.namespace, 'chats'), 'chats-projection');
    expect(pending.num_ack_pending + pending.num_pending).toBeGreaterThan(0); // ...and before the ack

    const metricsPort = await freePort();
    const restarted = startMessages({ ...vars, METRICS_PORT: String(metricsPort) });
    children.push(restarted.child);
    await eventually(async () => {
      const info = await bus.jsm.consumers.info(streamName(env.namespace, 'chats'), 'chats-projection');
      return info.num_ack_pending === 0 && info.num_pending === 0 ? info : undefined;
    }, 15_000, 'redelivered events to be acked');

    const rows = (await db.query('SELECT seq, body FROM messages.messages ORDER BY seq')).rows;
    expect(rows).toHaveLength(total);
    expect(rows.map((r) => r.seq)).toEqual(Array.from({ length: total }, (_, i) => i + 2));
    const chats = (await db.query('SELECT count(*)::int AS n FROM messages.chats')).rows[0].n;
    expect(chats).toBe(1);
    // The restarted projector started from the checkpoint (its consumer is recreated there), so it
    // applied exactly the events the first one had not committed: none twice.
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const applied = /projector_events_total\{projector="chats-projection",outcome="applied"[^}]*\} (\d+)/.exec(metrics);
    expect(Number(applied?.[1] ?? 0)).toBe(total + 1 - committed);
    restarted.child.kill('SIGTERM');
    expect(await restarted.exited).toBe(0);
  }, 60_000);

  /**
   * Issue 17: a deleted message's body must leave the stream even when the service dies right
   * after the tombstone's commit (before its ack and before anything after it ran). The deletion
   * is queued in the same transaction (messages.stream_deletions) and a reactor drains the queue,
   * so the restarted service finishes it.
   */
  it('removes a deleted body from the stream even when killed between the commit and the deletion', async () => {
    const { sequencer, chatId, sender, subject } = await groupOfOne();
    const command = { chatId, senderId: sender, messageId: newId(), clientMsgId: 'gone', body: 'a secret that must go', replyTo: null, attachmentIds: [], at: new Date(), eventId: newId(), correlationId: newId() };
    const sent = await sequencer.append(subject, sendMessageId(chatId, sender, 'gone'), (seq) => messageSent(command, seq));
    await sequencer.append<MessageDeleted>(subject, `delete:${command.messageId}`, (seq) => ({
      type: 'MessageDeleted',
      version: 1,
      chatId,
      seq,
      data: { messageId: command.messageId, deletedBy: sender, original: { seq: sent.event.seq, senderId: sender, clientMsgId: 'gone', createdAt: command.at.toISOString() } },
      meta: buildMeta({ eventId: newId(), occurredAt: new Date(), actorId: sender, correlationId: newId() }),
    }));
    const stream = streamName(env.namespace, 'chats');
    const bodyStored = () => bus.jsm.streams.getMessage(stream, { seq: sent.streamSeq }).then((m) => (m ? m.string().includes('a secret that must go') : false), () => false);
    expect(await bodyStored()).toBe(true);

    const vars = { ...env.env, METRICS_PORT: String(await freePort()), PROJECTOR_ACK_WAIT_MS: '1000' };
    const crashing = startMessages({ ...vars, PARLEY_FAULT: 'projector-crash-after-commit' });
    children.push(crashing.child);
    expect(await crashing.exited).toBe('SIGKILL');
    // The tombstone is committed, the body is still in the stream, and its deletion is queued.
    const tombstone = await db.query('SELECT deleted_at FROM messages.messages WHERE id = $1', [command.messageId]);
    expect(tombstone.rows[0]?.deleted_at).not.toBeNull();
    expect(await bodyStored()).toBe(true);
    expect((await db.query('SELECT stream_seq::int AS s FROM messages.stream_deletions')).rows).toEqual([{ s: sent.streamSeq }]);

    const restarted = startMessages({ ...vars, METRICS_PORT: String(await freePort()) });
    children.push(restarted.child);
    await eventually(async () => ((await bodyStored()) ? undefined : true), 15_000, 'the deleted body to leave the stream');
    await eventually(async () => ((await db.query('SELECT count(*)::int AS n FROM messages.stream_deletions')).rows[0].n === 0 ? true : undefined), 5_000, 'the queue to empty');
    restarted.child.kill('SIGTERM');
    expect(await restarted.exited).toBe(0);
  }, 60_000);
});
