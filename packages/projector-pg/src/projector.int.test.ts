import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { createMetrics } from '@parley/telemetry';
import { createTestEnv, eventually, parseNoted, type Noted, type TestEnv } from '@parley/testing';
import { connectBus, ensureStreams, publishEvent, type Bus } from '@parley/bus';
import { waitForCheckpoint } from './checkpoint.js';
import { Projector, type ProjectorOptions } from './projector.js';
import type { Projection } from './store.js';

describe('Projector', () => {
  let env: TestEnv;
  let bus: Bus;
  let pool: pg.Pool;
  let stream: string;
  let subjectRoot: string;
  let run = 0;
  const projectors: Projector<Noted>[] = [];

  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'projector-test', log: createLogger({ service: 't', level: 'silent' }) });
    pool = new pg.Pool({ connectionString: env.databaseUrl });
    await pool.query('CREATE TABLE checkpoints (projector text PRIMARY KEY, stream_seq bigint NOT NULL)');
    await pool.query('CREATE TABLE notes (projector text, n int, stream_seq bigint, PRIMARY KEY (projector, n))');
  });
  afterAll(async () => {
    await Promise.all(projectors.map((p) => p.stop()));
    await pool?.end();
    await bus?.nc.close();
    await env?.cleanup();
  });

  beforeEach(async () => {
    run += 1;
    stream = `${env.namespace}_proj${run}`;
    subjectRoot = `${env.namespace}.proj${run}`;
    await ensureStreams(bus.jsm, [{ name: stream, description: 't', subjects: [`${subjectRoot}.*`], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 1 }], createLogger({ service: 't', level: 'silent' }));
  });

  function projector(name: string, projection: Partial<Projection<Noted>> = {}, logs: string[] = [], options: Partial<ProjectorOptions<Noted>> = {}) {
    const metrics = createMetrics('test');
    const p = new Projector<Noted>({
      bus,
      stream,
      filterSubject: `${subjectRoot}.*`,
      pool,
      databaseUrl: env.databaseUrl,
      checkpointTable: 'checkpoints',
      parse: parseNoted,
      projection: {
        name,
        async apply(event, tx, position) {
          await tx.query('INSERT INTO notes (projector, n, stream_seq) VALUES ($1, $2, $3)', [name, event.n, position.streamSeq]);
        },
        ...projection,
      },
      log: createLogger({ service: 't', level: 'info', destination: { write: (line: string) => logs.push(line) } }),
      metrics,
      ackWaitMs: 1000,
      maxAttempts: 3,
      ...options,
    });
    projectors.push(p);
    return { p, metrics };
  }

  const publish = (n: number, subject = `${subjectRoot}.a`) => publishEvent(bus.js, subject, { type: 'Noted', n, meta: { eventId: `e${n}` } } as Noted, { msgId: `${run}-${n}` });
  const notes = async (name: string) => (await pool.query('SELECT n FROM notes WHERE projector = $1 ORDER BY stream_seq', [name])).rows.map((r) => r.n);

  it('commits a batch without waiting for the WAL flush when synchronousCommit is off, and only inside its own transaction', async () => {
    const seen: Record<string, string[]> = { on: [], off: [] };
    for (const mode of ['on', 'off'] as const) {
      const name = `commit-${mode}${run}`;
      const { p } = projector(
        name,
        {
          async apply(event, tx, position) {
            seen[mode]!.push((await tx.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit);
            await tx.query('INSERT INTO notes (projector, n, stream_seq) VALUES ($1, $2, $3)', [name, event.n, position.streamSeq]);
          },
        },
        [],
        { synchronousCommit: mode === 'on' },
      );
      p.start();
      const { seq } = await publish(mode === 'on' ? 1 : 2);
      expect(await waitForCheckpoint(pool, 'checkpoints', name, seq, 10_000)).toBe(true);
      await p.stop();
    }
    // Each projector reads the whole stream: the second applies both events.
    expect(seen).toEqual({ on: ['on'], off: ['off', 'off'] });
    // SET LOCAL ends with the transaction: the pooled connection is back at the server's default.
    expect((await pool.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit).toBe('on');
  });

  it('applies events in stream order and records the checkpoint with them', async () => {
    const name = `ordered${run}`;
    const { p } = projector(name);
    p.start();
    let last = 0;
    for (let n = 1; n <= 50; n++) last = (await publish(n, `${subjectRoot}.${n % 3}`)).seq;
    expect(await waitForCheckpoint(pool, 'checkpoints', name, last, 10_000)).toBe(true);
    expect(await notes(name)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it('lingers for more events before a batch, so events at a steady rate share one transaction', async () => {
    const name = `linger${run}`;
    const batches: number[][] = [];
    // The linger stays far inside the ack wait (a quarter at most), so nothing is redelivered meanwhile.
    const { p } = projector(name, {}, [], { lingerMs: 2_000, ackWaitMs: 10_000, hooks: { received: async (seqs) => void batches.push(seqs) } });
    p.start();
    const first = await publish(1);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, first.seq, 10_000)).toBe(true);
    batches.length = 0;
    // One at a time, each after the last was stored: without the linger each would be a batch.
    let last = 0;
    for (let n = 2; n <= 6; n++) last = (await publish(n)).seq;
    expect(await waitForCheckpoint(pool, 'checkpoints', name, last, 10_000)).toBe(true);
    expect(batches).toEqual([[last - 4, last - 3, last - 2, last - 1, last]]);
    expect(await notes(name)).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('keeps a linger longer than the ack wait allows to a quarter of it, so a waiting batch is not redelivered', async () => {
    const name = `clamped${run}`;
    const batches: number[][] = [];
    const { p } = projector(name, {}, [], { lingerMs: 60_000, ackWaitMs: 2_000, hooks: { received: async (seqs) => void batches.push(seqs) } });
    p.start();
    const started = Date.now();
    const first = await publish(1);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, first.seq, 10_000)).toBe(true);
    expect(Date.now() - started).toBeLessThan(5_000);
    await new Promise((resolve) => setTimeout(resolve, 2_500)); // past the ack wait: a redelivery would show now
    expect(batches).toEqual([[first.seq]]);
  });

  it('terminates a poison event, counts and logs it, and carries on with the next ones', async () => {
    const name = `poison${run}`;
    const logs: string[] = [];
    const { p, metrics } = projector(name, {}, logs);
    p.start();
    await publish(1);
    await publishEvent(bus.js, `${subjectRoot}.a`, { type: 'Unknown' }, { msgId: `${run}-junk` });
    await bus.js.publish(`${subjectRoot}.a`, 'not json at all');
    const last = await publish(2);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, last.seq, 10_000)).toBe(true);
    expect(await notes(name)).toEqual([1, 2]);
    const poison = (await metrics.registry.getSingleMetric('projector_poison_messages_total')!.get()).values[0]?.value;
    expect(poison).toBe(2);
    expect(logs.filter((l) => l.includes('poison event terminated'))).toHaveLength(2);
    // Terminated, not left pending: JetStream will not redeliver them.
    const info = await eventually(async () => {
      const i = await bus.jsm.consumers.info(stream, name);
      return i.num_ack_pending === 0 ? i : undefined;
    });
    expect(info.num_pending).toBe(0);
  });

  it('retries a failing event in place, so later events never overtake it', async () => {
    const name = `retry${run}`;
    let failures = 2;
    const { p } = projector(name, {
      async apply(event, tx, position) {
        if (event.n === 2 && failures-- > 0) {
          throw Object.assign(new Error('connection terminated unexpectedly'), { code: '08006' });
        }
        await tx.query('INSERT INTO notes (projector, n, stream_seq) VALUES ($1, $2, $3)', [name, event.n, position.streamSeq]);
      },
    });
    p.start();
    for (const n of [1, 2, 3]) await publish(n);
    const last = await publish(4);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, last.seq, 10_000)).toBe(true);
    expect(await notes(name)).toEqual([1, 2, 3, 4]);
  });

  it('gives up on an event that fails for a non-transient reason maxAttempts times, as poison', async () => {
    const name = `bad${run}`;
    const { p, metrics } = projector(name, {
      async apply(event, tx, position) {
        if (event.n === 2) throw new Error('violates check constraint');
        await tx.query('INSERT INTO notes (projector, n, stream_seq) VALUES ($1, $2, $3)', [name, event.n, position.streamSeq]);
      },
    });
    p.start();
    for (const n of [1, 2]) await publish(n);
    const last = await publish(3);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, last.seq, 15_000)).toBe(true);
    expect(await notes(name)).toEqual([1, 3]);
    expect((await metrics.registry.getSingleMetric('projector_poison_messages_total')!.get()).values[0]?.value).toBe(1);
  });

  it('runs one leader per projector: a second instance stands by and takes over when the first stops', async () => {
    const name = `leader${run}`;
    const first = projector(name);
    const second = projector(name);
    first.p.start();
    await eventually(async () => ((await pool.query("SELECT 1 FROM pg_stat_activity WHERE application_name = $1", [`projector:${name}`])).rowCount ? true : undefined));
    second.p.start();
    const a = await publish(1);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, a.seq, 10_000)).toBe(true);
    expect(first.p.applied).toBe(1);
    expect(second.p.applied).toBe(0);
    await first.p.stop();
    const b = await publish(2);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, b.seq, 15_000)).toBe(true);
    expect(second.p.applied).toBe(1);
    expect(await notes(name)).toEqual([1, 2]);
  });

  it('recovers when its leadership session is cut (a Postgres restart) and goes on projecting', async () => {
    const name = `recover${run}`;
    const { p } = projector(name);
    p.start();
    const first = await publish(1);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, first.seq, 10_000)).toBe(true);
    // What a Postgres restart does to the lock session: the server ends it.
    await pool.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [`projector:${name}`]);
    const second = await publish(2);
    expect(await waitForCheckpoint(pool, 'checkpoints', name, second.seq, 15_000)).toBe(true);
    expect(await notes(name)).toEqual([1, 2]);
  });
});
