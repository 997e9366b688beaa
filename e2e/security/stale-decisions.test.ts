import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { holdLock } from '../pg-lock.js';
import { streamName } from '@parley/contracts';
import { waitForCheckpoint } from '@parley/projector-pg';
import { CHECKPOINT_TABLE, USERS_PROJECTOR } from '../../services/users/src/users/projection.js';
import { http, register, startStack, type Account, type Stack } from '../stack.js';

/**
 * A change answered 503 is stored, only not yet projected. The users routes decided the next
 * request from the projection ("no field differs", "not blocked"): a second request made meanwhile
 * found nothing to do, answered 200 or 404, and then the first event landed and undid what the
 * user asked last. The account's row is held here as a slow projector would hold it.
 */
describe('a users change decided while an earlier one waits for the projection', () => {
  let stack: Stack;
  let db: pg.Client;
  let nc: NatsConnection;
  beforeAll(async () => {
    stack = await startStack();
    db = new pg.Client({ connectionString: stack.env.databaseUrl });
    await db.connect();
    nc = await stack.env.connectNats('stale-decisions');
  });
  afterAll(async () => {
    await nc?.close();
    await db?.end();
    await stack?.stop();
  });

  /** Runs `first` (503: its event stored, not projected) then starts `second`, with `lock` held until `second` answered or a second passed. */
  async function whileHeld(user: Account, lock: string, first: () => Promise<{ status: number }>, second: () => Promise<{ status: number }>): Promise<number> {
    const holder = await holdLock(stack.env.databaseUrl, lock, lock.includes('$1') ? [user.id] : []);
    try {
      expect((await first()).status).toBe(503);
      const answer = second();
      await Promise.race([answer, new Promise((r) => setTimeout(r, 1_000))]);
      await holder.release();
      const status = (await answer).status;
      // Every event stored so far projected, before the state is read.
      const last = (await (await jetstreamManager(nc)).streams.info(streamName(stack.env.namespace, 'users'))).state.last_seq;
      expect(await waitForCheckpoint(db, CHECKPOINT_TABLE, USERS_PROJECTOR, last, 10_000)).toBe(true);
      return status;
    } finally {
      await holder.end();
    }
  }

  it('privacy: the last asked for stays', async () => {
    const ann = await register(stack, 'stale_ann');
    const privacy = (presence: string) => http(stack, 'PATCH', '/api/v1/users/me/privacy', { token: ann.accessToken, body: { presence } });
    expect((await privacy('nobody')).status).toBe(200);
    const status = await whileHeld(ann, 'SELECT 1 FROM users.users WHERE id = $1 FOR UPDATE', () => privacy('everyone'), () => privacy('nobody'));
    expect(status).toBe(200);
    expect((await http(stack, 'GET', '/api/v1/users/me/privacy', { token: ann.accessToken })).body.presence).toBe('nobody');
  });

  it('blocks: an unblock after a block that waited unblocks', async () => {
    const [bea, cal] = [await register(stack, 'stale_bea'), await register(stack, 'stale_cal')];
    const status = await whileHeld(
      bea,
      // Inserts wait; reads (whether she blocked him) do not.
      'LOCK TABLE users.blocks IN EXCLUSIVE MODE',
      () => http(stack, 'POST', '/api/v1/users/me/blocks', { token: bea.accessToken, body: { userId: cal.id } }),
      () => http(stack, 'DELETE', `/api/v1/users/me/blocks/${cal.id}`, { token: bea.accessToken }),
    );
    expect(status).toBe(204);
    expect((await http(stack, 'GET', '/api/v1/users/me/blocks', { token: bea.accessToken })).body.items).toEqual([]);
  });
});
