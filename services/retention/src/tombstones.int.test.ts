import type { Msg } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, respondFailure, type Bus } from '@parley/bus';
import { MAX_RPC_BATCH, newId, subjects, type RpcMethods } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { expiredTombstones } from './tombstones.js';

const log = createLogger({ service: 'test', level: 'silent' });
type Req = RpcMethods['messages.retentionPreview']['req'];

/**
 * The pass's question for expired tombstones (e2e/retention-tombstones.test.ts has the whole
 * pass): here against a stand-in messages service, for what the e2e test cannot reach cheaply,
 * more than one page of chats, and a messages service from before the question.
 */
describe('expiredTombstones', () => {
  let env: TestEnv;
  let bus: Bus;
  let answer: (msg: Msg, req: Req) => void = () => {};
  const asked: Req[] = [];
  beforeAll(async () => {
    env = await createTestEnv();
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'tombstones-test', log });
    const sub = bus.nc.subscribe(subjects.rpc(env.namespace, 'messages', 'retentionPreview'));
    void (async () => {
      for await (const msg of sub) {
        const req = msg.json<Req>();
        asked.push(req);
        answer(msg, req);
      }
    })();
    await bus.nc.flush();
  });
  afterAll(async () => {
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('reads every page, each after the last chat of the one before', async () => {
    const chats = Array.from({ length: MAX_RPC_BATCH + 1 }, () => newId()).sort();
    answer = (msg, req) => {
      const after = req.tombstones?.afterChatId ?? null;
      const page = chats.filter((id) => after === null || id > after).slice(0, MAX_RPC_BATCH);
      msg.respond(JSON.stringify({ messages: 0, reactions: 0, polls: 0, pollVotes: 0, attachments: 0, readReceipts: 0, heads: [], tombstones: page.map((chatId, i) => ({ chatId, seq: i + 1 })) }));
    };
    asked.length = 0;
    const cutoff = new Date('2026-01-01T00:00:00.000Z');
    const found = await expiredTombstones({ bus, namespace: env.namespace, log }, cutoff);
    expect(found.size).toBe(MAX_RPC_BATCH + 1);
    expect(found.get(chats.at(-1)!)).toBe(1);
    expect(asked.map((r) => r.tombstones)).toEqual([
      { cutoff: cutoff.toISOString(), afterChatId: null },
      { cutoff: cutoff.toISOString(), afterChatId: chats[MAX_RPC_BATCH - 1] },
    ]);
  });

  it('goes on without them when the messages service refuses the question (a version from before it)', async () => {
    answer = (msg) => respondFailure(msg, 'invalid', 'must NOT have additional properties');
    expect((await expiredTombstones({ bus, namespace: env.namespace, log }, new Date())).size).toBe(0);
  });
});
