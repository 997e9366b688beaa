import { jetstreamManager } from '@nats-io/jetstream';
import { Kvm } from '@nats-io/kv';
import type { NatsConnection } from '@nats-io/transport-node';
import { connectBus, RequestSigner } from '@parley/bus';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { presenceWithoutSockets } from '../services/gateway/src/ws/presence.test-helper.js';
import { startGatewayService } from '../services/gateway/src/service.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startUsersService } from '../services/users/src/service.js';
import { activeUsers, http, natsRelay, register, startGatewayProcess, startStack, TestSocket, type Stack } from './stack.js';

/** Waits until `active_users` on `metricsPort` reads `n`. */
async function activeUsersReach(metricsPort: number, n: number, timeoutMs: number): Promise<void> {
  await eventually(async () => ((await activeUsers(metricsPort)) === n ? true : undefined), timeoutMs, `active_users ${n}`);
}

/**
 * users, messages and a gateway in this process, each stoppable on its own (startStack stops them
 * together), on an env of their own; `cleanups` gets what undoes each, last first. A service the
 * test stops itself is stopped only once.
 */
async function servicesApart(cleanups: (() => Promise<void>)[]) {
  const env: TestEnv = await createTestEnv();
  cleanups.push(() => env.cleanup());
  const vars: Record<string, string> = { ...env.env, PORT: '0', METRICS_PORT: '0' };
  const once = (stop: () => Promise<void>) => {
    let stopped: Promise<void> | undefined;
    return () => (stopped ??= stop());
  };
  const users = once((await startUsersService(vars)).stop);
  cleanups.push(users);
  const messages = once((await startMessagesService(vars)).stop);
  cleanups.push(messages);
  const running = await startGatewayService(vars);
  const gateway = { port: running.port, metricsPort: running.metricsPort, stop: once(running.stop) };
  cleanups.push(gateway.stop);
  return { env, vars, stopUsers: users, gateway, stack: { baseUrl: `http://127.0.0.1:${gateway.port}` } };
}

/** A second gateway as its own process on `stack`'s servers, killed at cleanup. */
async function gatewayProcess(stack: Stack, vars: Record<string, string>, cleanups: (() => Promise<void>)[]): Promise<{ wsUrl: string; metricsPort: number }> {
  const gateway = await startGatewayProcess(stack, vars);
  cleanups.push(async () => void gateway.child.kill('SIGKILL'));
  return gateway;
}

/**
 * Every gateway keeps the set of users online anywhere (its snapshots and `active_users`) from
 * the presence notices, and lists the whole bucket only every 5 minutes as a safety net
 * (services/gateway/src/ws/presence.ts). So the set must not depend on that listing for what can
 * be told: a transition whose audience is unknown, and notices missed while cut off from NATS.
 */
describe('presence: the gateways follow every transition without listing the bucket', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  it('a user going offline while users.watchers cannot answer leaves the online set at once (told to no socket)', async () => {
    const { env, stopUsers, gateway, stack } = await servicesApart(cleanups);

    const [ann, bob] = [await register(stack, 'pn_ann'), await register(stack, 'pn_bob')];
    const group = await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'group', title: 'notices', memberIds: [ann.id] } });
    expect(group.status).toBe(201);
    const bobSocket = await TestSocket.open(`ws://127.0.0.1:${gateway.port}/ws`, bob.accessToken);
    const annSocket = await TestSocket.open(`ws://127.0.0.1:${gateway.port}/ws`, ann.accessToken);
    // Bob, her peer in a group, is told she is online while her settings can be read.
    expect(await bobSocket.next((f) => f.op === 'presence' && f.userId === ann.id)).toEqual({ op: 'presence', userId: ann.id, online: true });
    await activeUsersReach(gateway.metricsPort, 2, 5_000);

    // The users service, which answers users.watchers, is gone: nobody may be told of ann (her
    // privacy settings are unknown), but the gateway must still know she left.
    await stopUsers();
    const nc: NatsConnection = await env.connectNats('presence-notices-test');
    cleanups.push(() => nc.close());
    const notices: unknown[] = [];
    nc.subscribe(subjects.presence(env.namespace, ann.id), { callback: (_err, msg) => void notices.push(msg.json()) });
    await nc.flush();
    annSocket.close();
    await eventually(async () => (notices.length > 0 ? true : undefined), 5_000, 'the offline notice');
    expect(notices[0]).toEqual({ userId: ann.id, online: false, chatIds: [], watcherIds: [], blocked: [] });
    await activeUsersReach(gateway.metricsPort, 1, 2_000);
    // Bob was not told: the gateway handled the notice (the gauge moved), so a frame to him would
    // have been sent before his socket's close.
    bobSocket.close();
    await bobSocket.waitClosed();
    expect(bobSocket.frames.filter((f) => f.op === 'presence' && f.userId === ann.id && f.online === false)).toEqual([]);
  }, 60_000);

  it('a gateway cut off from NATS while a user went offline learns it when it reconnects', async () => {
    const stack: Stack = await startStack();
    cleanups.push(() => stack.stop());
    const relay = await natsRelay(new URL(stack.vars.NATS_URL!));
    cleanups.push(() => relay.close());
    const { metricsPort } = await gatewayProcess(stack, { NATS_URL: relay.url }, cleanups);

    const ann = await register(stack, 'pr_ann');
    const annSocket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    await activeUsersReach(metricsPort, 1, 5_000); // the other gateway has her, by her online notice

    const nc: NatsConnection = await stack.env.connectNats('presence-notices-test');
    cleanups.push(() => nc.close());
    const notices: { online: boolean }[] = [];
    nc.subscribe(subjects.presence(stack.env.namespace, ann.id), { callback: (_err, msg) => void notices.push(msg.json()) });
    await nc.flush();
    relay.cut();
    annSocket.close();
    // Her offline notice went out while the second gateway could not hear it...
    await eventually(async () => (notices.some((n) => n.online === false) ? true : undefined), 5_000, 'the offline notice');
    expect(await activeUsers(metricsPort)).toBe(1);
    // ...which it makes up for by listing the bucket once it is back.
    relay.restore();
    await activeUsersReach(metricsPort, 0, 10_000);
  }, 60_000);
});

describe('presence: a rolling upgrade', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  it('reaps a gateway of an older release (no heartbeat key) whose keys are no longer written, not one that still writes them', async () => {
    const { env, vars, gateway, stack } = await servicesApart(cleanups);
    const [ann, carl, dave, peer] = [await register(stack, 'pu_ann'), await register(stack, 'pu_carl'), await register(stack, 'pu_dave'), await register(stack, 'pu_peer')];
    const group = await http(stack, 'POST', '/api/v1/chats', { token: peer.accessToken, body: { type: 'group', title: 'upgrade', memberIds: [ann.id, carl.id, dave.id] } });
    expect(group.status).toBe(201);
    // The gateway that served those requests goes (cleanly: it leaves no key); the one under test
    // is a Presence of this process, alone, so it is the one that reaps.
    await gateway.stop();
    const log = createLogger({ service: 'test', level: 'silent' });
    const bus = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'presence-upgrade', log });
    cleanups.push(() => bus.nc.close());
    bus.signer = new RequestSigner(vars.GATEWAY_SIGNING_KEY!);
    const presence = presenceWithoutSockets(bus, env.namespace);
    await presence.start();
    cleanups.push(() => presence.stop());

    // Three other gateways' keys, as they write them: `crashed` and `alive` are of the older
    // release (users' keys only, each written again every 10 s while the gateway lives); `current`
    // is of this one (its own gw. key, beating; its user's key written once).
    const kv = await new Kvm(bus.nc).open(subjects.presenceBucket(env.namespace));
    // `current`'s id sorts after any other, so the Presence under test stays the reaper (the live
    // gateway with the smallest id).
    const [crashed, alive, current] = [randomId(), randomId(), `ffffffff${randomId().slice(8)}`];
    await kv.put(`${ann.id}.${crashed}`, '1');
    const crashedAt = Date.now();
    await kv.put(`${dave.id}.${current}`, '1');
    const nc: NatsConnection = await env.connectNats('presence-upgrade-test');
    cleanups.push(() => nc.close());
    const notices: { userId: string; online: boolean; chatIds: string[]; lastSeen?: string }[] = [];
    nc.subscribe(subjects.presence(env.namespace, '*'), { callback: (_err, msg) => void notices.push(msg.json()) });
    await nc.flush();
    const beating = setInterval(() => {
      void kv.put(`${carl.id}.${alive}`, '1');
      void kv.put(`gw.${current}`, '');
    }, 2_000);
    cleanups.push(async () => clearInterval(beating));
    await kv.put(`${carl.id}.${alive}`, '1');
    await kv.put(`gw.${current}`, '');

    // Past the older release's 30 s TTL by the server's clock: a beat of the Presence 30 s after
    // the crashed gateway's last write. Then a listing, as every COUNT_EVERY_MS.
    const inside = presence as unknown as { lastBeatAt: number; beat(): Promise<void>; count(): Promise<void> };
    const lastWrite = (await kv.get(`${ann.id}.${crashed}`))!.created.getTime();
    await eventually(async () => {
      if (Date.now() - crashedAt < 30_000) return undefined; // not before it can be true
      await inside.beat();
      return inside.lastBeatAt - lastWrite >= 30_000 ? true : undefined;
    }, 45_000, "a beat 30 s after the crashed gateway's last write");
    await inside.count();
    clearInterval(beating);
    // Every notice of the reapings went out before count() returned; one more from the same
    // connection arrives after them all.
    bus.nc.publish(subjects.presence(env.namespace, 'end'), JSON.stringify({ userId: 'end' }));
    await eventually(async () => (notices.some((n) => n.userId === 'end') ? true : undefined), 5_000, 'the end marker');

    expect(await kv.get(`${ann.id}.${crashed}`)).toBeNull();
    expect((await kv.get(`${dave.id}.${current}`))?.operation).toBe('PUT');
    // Ann alone was announced offline: not carl, whose gateway still writes his key, nor dave.
    expect(notices.map((n) => n.userId)).toEqual([ann.id, 'end']);
    expect(notices[0]).toMatchObject({ online: false, chatIds: [group.body.id] });
    expect(Date.parse(notices[0]!.lastSeen!)).toBeLessThanOrEqual(crashedAt + 1_000);
  }, 90_000);
});

function randomId(): string {
  return crypto.randomUUID();
}

/**
 * Whether a user is still connected elsewhere is asked of each gateway this one knows
 * (presence.ts, heldElsewhere): a new gateway says hello as it starts, so the others know it
 * before their next beat.
 */
describe('presence: a gateway that just started', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => {});
  });

  it('is known to the others at once: a user who moved to it is not announced offline when leaving one of them', async () => {
    // Beats a minute apart: between them, the stack's gateway learns of the new one only by its hello.
    const beats = { PRESENCE_HEARTBEAT_MS: '60000' };
    const stack: Stack = await startStack(beats);
    cleanups.push(() => stack.stop());
    const [ann, peer] = [await register(stack, 'ph_ann'), await register(stack, 'ph_peer')];
    const group = await http(stack, 'POST', '/api/v1/chats', { token: peer.accessToken, body: { type: 'group', title: 'hello', memberIds: [ann.id] } });
    expect(group.status).toBe(201);
    const peerSocket = await TestSocket.open(stack.wsUrl, peer.accessToken);
    const annHere = await TestSocket.open(stack.wsUrl, ann.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence' && f.userId === ann.id)).toEqual({ op: 'presence', userId: ann.id, online: true });

    const fresh = await gatewayProcess(stack, beats, cleanups);
    const annThere = await TestSocket.open(fresh.wsUrl, ann.accessToken);
    // Set up there: her second key is written.
    const nc: NatsConnection = await stack.env.connectNats('presence-hello-test');
    cleanups.push(() => nc.close());
    const jsm = await jetstreamManager(nc);
    const bucket = subjects.presenceBucket(stack.env.namespace);
    const keysOfAnn = async () => Object.keys((await jsm.streams.info(`KV_${bucket}`, { subjects_filter: `$KV.${bucket}.${ann.id}.*` })).state.subjects ?? {}).length;
    await eventually(async () => ((await keysOfAnn()) === 2 ? true : undefined), 5_000, "ann's two keys");
    annHere.close();
    await eventually(async () => ((await keysOfAnn()) === 1 ? true : undefined), 5_000, 'her first key removed');
    // Her first offline notice is the one her last socket's close causes: a notice for the first
    // socket's close would say she was last seen before that key was gone.
    const closedAt = Date.now();
    annThere.close();
    const offline = await peerSocket.next((f) => f.op === 'presence' && f.userId === ann.id, 10_000);
    expect(offline).toMatchObject({ online: false });
    expect(Date.parse(offline.lastSeen)).toBeGreaterThanOrEqual(closedAt);
    peerSocket.close();
  }, 60_000);
});
