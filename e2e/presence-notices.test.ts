import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { subjects } from '@parley/contracts';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { startGatewayService } from '../services/gateway/src/service.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startUsersService } from '../services/users/src/service.js';
import { freePort, http, register, startStack, TestSocket, type Stack } from './stack.js';

const GATEWAY_MAIN = path.resolve(import.meta.dirname, '..', 'services/gateway/dist/main.js');

async function activeUsers(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(/active_users\{[^}]*\} (\d+)/.exec(text)?.[1]);
}

/** Waits until `active_users` on `metricsPort` reads `n`. */
async function activeUsersReach(metricsPort: number, n: number, timeoutMs: number): Promise<void> {
  await eventually(async () => ((await activeUsers(metricsPort)) === n ? true : undefined), timeoutMs, `active_users ${n}`);
}

/**
 * A TCP relay to NATS that the test can cut, as a network fault between one gateway and NATS
 * would: `cut()` drops every connection through it and refuses new ones until `restore()`.
 */
async function natsRelay(target: URL): Promise<{ url: string; cut(): void; restore(): void; close(): Promise<void> }> {
  let open = true;
  const pairs = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!open) return void client.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      pairs.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        pairs.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `nats://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const s of pairs) s.destroy();
    },
    restore() {
      open = true;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
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
    const env: TestEnv = await createTestEnv();
    cleanups.push(() => env.cleanup());
    const vars = { ...env.env, PORT: '0', METRICS_PORT: '0' };
    const users = await startUsersService(vars);
    let usersRunning = true;
    cleanups.push(async () => {
      if (usersRunning) await users.stop();
    });
    const messages = await startMessagesService(vars);
    cleanups.push(() => messages.stop());
    const gateway = await startGatewayService(vars);
    cleanups.push(() => gateway.stop());
    const stack = { baseUrl: `http://127.0.0.1:${gateway.port}` };

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
    await users.stop();
    usersRunning = false;
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
    const port = await freePort();
    const metricsPort = await freePort();
    const child: ChildProcess = spawn(process.execPath, [GATEWAY_MAIN], {
      env: { ...process.env, ...stack.vars, NATS_URL: relay.url, PORT: String(port), METRICS_PORT: String(metricsPort) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    cleanups.push(async () => void child.kill('SIGKILL'));
    await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/api/v1/chats`).catch(() => null))?.status === 401 ? true : undefined), 30_000, 'second gateway up');

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
