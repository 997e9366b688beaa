import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdLock } from './pg-lock.js';
import { eventually } from '@parley/testing';
import { http, register, startStack, type Stack } from './stack.js';

/** The gateway's wait for an ordinary answer in this stack: far below the export's 30 s. */
const SERVICE_TIMEOUT_MS = 1_000;

/**
 * api.md promises an export 30 s for its messages part (the users service's wait for
 * messages.export), but the gateway forwarded the export like any request, with
 * SERVICE_TIMEOUT_MS (5 s by default): a slower export was a 503 from the gateway.
 */
describe('the data export waits longer than SERVICE_TIMEOUT_MS', () => {
  let stack: Stack;
  let db: pg.Client;
  beforeAll(async () => {
    stack = await startStack({ SERVICE_TIMEOUT_MS: String(SERVICE_TIMEOUT_MS) });
    db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await stack?.stop();
  });

  it('answers 200 when the messages part takes longer than SERVICE_TIMEOUT_MS', async () => {
    const a = await register(stack, 'slow_export');
    // A table the messages export reads and nothing else in this test touches, held as a slow
    // database would hold it: the export's read of it waits until the commit.
    const holder = await holdLock(stack.env.databaseUrl, 'LOCK TABLE messages.poll_votes IN ACCESS EXCLUSIVE MODE');
    try {
      const started = Date.now();
      const exported = http(stack, 'GET', '/api/v1/users/me/export', { token: a.accessToken });
      await eventually(
        async () => ((await db.query("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%poll_votes%'")).rowCount ? true : undefined),
        10_000,
        'the messages export waiting for the table',
      );
      // Held past the gateway's SERVICE_TIMEOUT_MS (the condition under test), far inside 30 s.
      await sleep(Math.max(0, started + 2 * SERVICE_TIMEOUT_MS - Date.now()));
      await holder.release();
      const answer = await exported;
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
      expect(Date.now() - started).toBeGreaterThan(SERVICE_TIMEOUT_MS);
      expect(answer.body.profile.id).toBe(a.id);
      expect(answer.body.pollVotes).toEqual([]);
    } finally {
      await holder.end();
    }
  });
});
