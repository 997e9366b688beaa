import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus, type Bus } from '@parley/bus';
import { subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, type TestEnv } from '@parley/testing';
import type { Presence } from './presence.js';
import type { Socket, SocketRegistry } from './registry.js';
import { presenceWithoutSockets } from './presence.test-helper.js';

/** Keys enough that listing the bucket takes far longer than a notice's round trip. */
const KEYS = 20_000;

/** The parts of Presence this test watches: the online set and the listing's own state. */
interface Inside {
  online: Set<string>;
  duringCount: Map<string, boolean> | undefined;
  count(): Promise<void>;
}

describe('presence: a listing of the bucket does not undo the transitions told while it ran', () => {
  let env: TestEnv;
  let bus: Bus;
  let presence: Presence;

  beforeAll(async () => {
    env = await createTestEnv();
    const log = createLogger({ service: 'test', level: 'silent' });
    bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'presence-int', log });
    presence = presenceWithoutSockets(bus, env.namespace);
    await presence.start();
  });
  afterAll(async () => {
    await presence?.stop();
    await bus?.nc.close();
    await env?.cleanup();
  });

  it('a user announced offline during the listing stays offline, though the listing saw their key', async () => {
    // Keys of users on another gateway, written straight to the bucket's subjects: the one of
    // `gone` first, so the listing has it long before it ends.
    const otherGateway = randomUUID();
    const gone = randomUUID();
    const users = [gone, ...Array.from({ length: KEYS - 1 }, () => randomUUID())];
    const bucket = subjects.presenceBucket(env.namespace);
    for (let i = 0; i < users.length; i += 1_000) {
      await Promise.all(users.slice(i, i + 1_000).map((userId) => bus.js.publish(`$KV.${bucket}.${userId}.${otherGateway}`, '1')));
    }

    const inside = presence as unknown as Inside;
    expect(inside.duringCount, 'the count at start is over').toBeUndefined();
    const counted = inside.count();
    // The other gateway removed gone's key after the listing passed it, and told everyone. (The key
    // is left here: the listing must have seen it, however fast it runs.)
    bus.nc.publish(subjects.presence(env.namespace, gone), JSON.stringify({ userId: gone, online: false, chatIds: [], watcherIds: [] }));
    await bus.nc.flush(); // the notice comes back on this connection before the flush's answer
    expect(inside.duringCount, 'the notice arrived while the listing ran').toBeDefined();
    expect(inside.online.has(gone)).toBe(false);

    await counted;
    expect(inside.online.has(gone)).toBe(false);
    expect(inside.online.size).toBe(KEYS - 1);
  }, 60_000);

  it('keys a user whose first two sockets here are set up together (neither was the only one, and the user stayed unannounced)', async () => {
    const userId = randomUUID();
    const registry = (presence as unknown as { deps: { registry: SocketRegistry } }).deps.registry;
    const socket = () => ({ getUserData: () => ({ state: { chats: new Map(), closed: false } }) }) as unknown as Socket;
    // Both authenticated (registered) before either's set-up ends, as two tabs reconnecting do.
    const sockets = [socket(), socket()];
    for (const s of sockets) registry.add(userId, randomUUID(), s);
    // The announcement asks users.watchers, which nobody answers here: the key written before it is what is read.
    await Promise.allSettled(sockets.map((s) => presence.connected(s, userId)));
    const bucket = subjects.presenceBucket(env.namespace);
    const key = await bus.jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.${userId}.${presence.gatewayId}` });
    expect(key).not.toBeNull();
  });
});
