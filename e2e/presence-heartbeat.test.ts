import type { ChildProcess } from 'node:child_process';
import { jetstreamManager, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { subjects } from '@parley/contracts';
import { eventually } from '@parley/testing';
import { activeUsers, http, register, startGatewayProcess, startStack, TestSocket, type Account, type Stack } from './stack.js';

/**
 * Short beats, so that "three missed beats" is 3 s here (the default is 10 s), yet long enough that
 * a busy CI machine does not take a live gateway for gone.
 */
const HEARTBEAT_MS = 1_000;

async function groupOf(stack: Pick<Stack, 'baseUrl'>, owner: Account, others: Account[]): Promise<string> {
  const answer = await http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'beats', memberIds: others.map((o) => o.id) } });
  if (answer.status !== 201) throw new Error(`group: ${answer.status}`);
  return answer.body.id;
}

/**
 * Presence is kept alive by one heartbeat per gateway (services/gateway/src/ws/presence.ts): a
 * gateway that dies without closing its sockets is reaped by the others, whose watchers then see
 * its users go offline; a gateway taken for gone while alive announces its users again.
 */
describe('presence: one heartbeat per gateway', () => {
  let stack: Stack;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let stream: string;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    stack = await startStack({ PRESENCE_HEARTBEAT_MS: String(HEARTBEAT_MS) });
    nc = await stack.env.connectNats('presence-heartbeat-test');
    jsm = await jetstreamManager(nc);
    stream = `KV_${subjects.presenceBucket(stack.env.namespace)}`;
  });
  afterAll(async () => {
    for (const child of children) child.kill('SIGKILL');
    await nc?.close();
    await stack?.stop();
  });

  /** The subjects of the presence bucket under `filter` (a key per subject, no markers). */
  const keys = async (filter: string): Promise<string[]> =>
    Object.keys((await jsm.streams.info(stream, { subjects_filter: `$KV.${subjects.presenceBucket(stack.env.namespace)}.${filter}` })).state.subjects ?? {});

  /** A second gateway as its own process, on this stack's servers, that this test can kill -9. */
  async function startDoomedGateway(): Promise<{ child: ChildProcess; wsUrl: string }> {
    const gateway = await startGatewayProcess(stack, { PRESENCE_HEARTBEAT_MS: String(HEARTBEAT_MS) });
    children.push(gateway.child);
    return gateway;
  }

  it('announces offline, last seen at its last beat, the users of a gateway killed with their sockets open; one also connected elsewhere stays online', async () => {
    const [ann, bob, peer] = [await register(stack, 'hb_ann'), await register(stack, 'hb_bob'), await register(stack, 'hb_peer')];
    await groupOf(stack, peer, [ann, bob]);
    const doomed = await startDoomedGateway();
    const peerSocket = await TestSocket.open(stack.wsUrl, peer.accessToken);
    const annSocket = await TestSocket.open(doomed.wsUrl, ann.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence' && f.userId === ann.id)).toEqual({ op: 'presence', userId: ann.id, online: true });
    // Bob on both gateways: the doomed one first, so it announced him.
    const bobThere = await TestSocket.open(doomed.wsUrl, bob.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence' && f.userId === bob.id)).toEqual({ op: 'presence', userId: bob.id, online: true });
    const bobHere = await TestSocket.open(stack.wsUrl, bob.accessToken);
    await eventually(async () => ((await keys(`${bob.id}.*`)).length === 2 ? true : undefined), 5_000, "bob's two keys");

    const killedAt = Date.now();
    doomed.child.kill('SIGKILL');
    await Promise.all([annSocket.waitClosed(), bobThere.waitClosed()]);
    const offline = await peerSocket.next((f) => f.op === 'presence' && f.userId === ann.id, 10 * HEARTBEAT_MS + 5_000);
    expect(offline).toEqual({ op: 'presence', userId: ann.id, online: false, lastSeen: expect.any(String) });
    // Its last beat: before the kill, and less than three beats before it (or it would have been
    // taken for gone while alive).
    expect(Date.parse(offline.lastSeen)).toBeLessThanOrEqual(killedAt + 50);
    expect(Date.parse(offline.lastSeen)).toBeGreaterThan(killedAt - 3 * HEARTBEAT_MS);
    // The live gateway's active_users follows the notice (peer and bob are left), not a recount of
    // the bucket every 15 s.
    await eventually(async () => ((await activeUsers(stack.metricsPorts.gateway)) === 2 ? true : undefined), 2_000, 'active_users 2');
    // The dead gateway's keys are gone, its own included; bob keeps the key of the live one.
    expect(await keys(`${ann.id}.*`)).toEqual([]);
    expect(await keys(`${bob.id}.*`)).toHaveLength(1);
    expect(await keys('gw.*')).toHaveLength(1);

    // Bob was not announced offline by the reaping: the first offline frame about him is the one
    // his last socket's close causes now, with a last seen after that close.
    const closedAt = Date.now();
    bobHere.close();
    const bobOffline = await peerSocket.next((f) => f.op === 'presence' && f.userId === bob.id);
    expect(bobOffline).toMatchObject({ online: false });
    expect(Date.parse(bobOffline.lastSeen)).toBeGreaterThanOrEqual(closedAt - 50);
    peerSocket.close();
  }, 60_000);

  it('a gateway taken for gone while alive writes its users\' keys again and announces them online', async () => {
    const [ann, peer] = [await register(stack, 'hr_ann'), await register(stack, 'hr_peer')];
    await groupOf(stack, peer, [ann]);
    const peerSocket = await TestSocket.open(stack.wsUrl, peer.accessToken);
    const annSocket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence' && f.userId === ann.id)).toEqual({ op: 'presence', userId: ann.id, online: true });
    const [annKey] = await keys(`${ann.id}.*`);
    const gatewayId = annKey!.slice(annKey!.lastIndexOf('.') + 1);
    // What a reaping gateway does to one it takes for gone (a stall, a cut to NATS): every key of it in one purge.
    await jsm.streams.purge(stream, { filter: `$KV.${subjects.presenceBucket(stack.env.namespace)}.*.${gatewayId}` });
    expect(await keys(`${ann.id}.*`)).toEqual([]);
    // Its next beat finds its own key gone: ann's key is back, and her peer is told she is online.
    expect(await peerSocket.next((f) => f.op === 'presence' && f.userId === ann.id, 10 * HEARTBEAT_MS + 5_000)).toEqual({ op: 'presence', userId: ann.id, online: true });
    expect(await keys(`${ann.id}.*`)).toEqual([annKey]);
    annSocket.close();
    peerSocket.close();
  }, 30_000);

  it('writes one key per gateway per beat, however many users are online', async () => {
    const accounts = await Promise.all(Array.from({ length: 12 }, (_, i) => register(stack, `hw_${i}`)));
    const sockets = await Promise.all(accounts.map((a) => TestSocket.open(stack.wsUrl, a.accessToken)));
    await eventually(async () => ((await Promise.all(accounts.map((a) => keys(`${a.id}.*`)))).every((k) => k.length === 1) ? true : undefined), 5_000, 'every key written');
    const lastSeq = async () => (await jsm.streams.info(stream)).state.last_seq;
    const before = await lastSeq();
    // The bucket moves on five times: five beats, if the beats are all that is written...
    await eventually(async () => ((await lastSeq()) - before >= 5 ? true : undefined), 20 * HEARTBEAT_MS + 5_000, 'five writes');
    const after = await lastSeq();
    // ...and they are: what is still stored from those writes is the gateway's own key (each beat
    // replaces the last, history 1), never a user's key, which a per-user refresh would leave.
    const stored: string[] = [];
    for (let seq = before + 1; seq <= after; seq++) {
      const message = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
      if (message) stored.push(message.subject);
    }
    expect(stored.length).toBeGreaterThanOrEqual(1);
    expect(stored.filter((subject) => !subject.startsWith(`$KV.${subjects.presenceBucket(stack.env.namespace)}.gw.`))).toEqual([]);
    for (const s of sockets) s.close();
  }, 30_000);
});
