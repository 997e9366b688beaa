import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, TestSocket, type Account, type Stack } from '../stack.js';

/**
 * Issue 23, finding 10: no cap on sockets per user, nor on unauthenticated sockets per address. Now
 * WS_MAX_SOCKETS_PER_USER and WS_MAX_UNAUTHENTICATED_PER_ADDRESS bound them: HTTP 429 at the
 * upgrade, close 4429 when an auth frame would pass the per-user cap. And the set-ups after
 * authentication take turns (WS_SETUP_CONCURRENCY), so a reconnect storm cannot time out the
 * services' database pools and have its sockets closed (1011) to reconnect again.
 */
describe('WebSocket caps per user and per address', () => {
  let stack: Stack;
  let user: Account;
  const open: TestSocket[] = [];
  beforeAll(async () => {
    // TRUSTED_PROXIES: client addresses from X-Forwarded-For (loopback is the proxy here).
    stack = await startStack({ WS_MAX_SOCKETS_PER_USER: '3', WS_MAX_UNAUTHENTICATED_PER_ADDRESS: '2', WS_SETUP_CONCURRENCY: '1', TRUSTED_PROXIES: 'loopback' });
    user = await register(stack);
  });
  afterAll(async () => {
    for (const s of open) s.ws.close();
    await stack?.stop();
  });

  it("refuses a user's socket past the cap with 429, and takes one again once a socket closed", async () => {
    for (let i = 0; i < 3; i++) open.push(await TestSocket.open(stack.wsUrl, user.accessToken));
    await expect(TestSocket.open(stack.wsUrl, user.accessToken)).rejects.toThrow('upgrade refused: 429');
    const first = open.shift()!;
    first.ws.close();
    await first.waitClosed();
    open.push(await eventually(() => TestSocket.open(stack.wsUrl, user.accessToken).catch(() => undefined), 5_000, 'a socket after one closed'));
  });

  it('closes with 4429 a socket whose auth frame would pass the per-user cap', async () => {
    const late = await TestSocket.open(stack.wsUrl);
    late.send({ op: 'auth', token: user.accessToken });
    expect((await late.waitClosed()).code).toBe(4429);
  });

  it('refuses unauthenticated sockets from one address past the cap, and counts one no longer once it authenticates', async () => {
    const other = await register(stack);
    const a = await TestSocket.open(stack.wsUrl);
    const b = await TestSocket.open(stack.wsUrl);
    open.push(a, b);
    await expect(TestSocket.open(stack.wsUrl)).rejects.toThrow('upgrade refused: 429');
    a.send({ op: 'auth', token: other.accessToken });
    await a.next((f) => f.op === 'authenticated');
    open.push(await TestSocket.open(stack.wsUrl));
  });

  it('does not count a socket closed while its auth frame was checked (it stayed counted for good)', async () => {
    const ghost = await register(stack);
    // An auth frame and a close sent together, one more time than the per-user cap.
    // From an address of their own: loopback's unauthenticated sockets are at their cap (above).
    for (let i = 0; i < 4; i++) {
      const socket = await TestSocket.open(stack.wsUrl, undefined, { headers: { 'x-forwarded-for': '203.0.113.77' } });
      socket.send({ op: 'auth', token: ghost.accessToken });
      socket.ws.close();
      await socket.waitClosed();
    }
    // Before: 429 (four sockets of hers in the registry, none open).
    const real = await TestSocket.open(stack.wsUrl, ghost.accessToken);
    open.push(real);
    real.send({ op: 'ping' });
    await real.next((f) => f.op === 'pong');
  });

  it('counts the unauthenticated sockets of an IPv6 client by its /64, as every per-address limit', async () => {
    const from = (address: string) => TestSocket.open(stack.wsUrl, undefined, { headers: { 'x-forwarded-for': address } });
    open.push(await from('2001:db8:bb:1::1'), await from('2001:db8:bb:1::2'));
    // Before: a third address of the same /64 was another client.
    await expect(from('2001:db8:bb:1:ffff::3')).rejects.toThrow('upgrade refused: 429');
    open.push(await from('2001:db8:bb:2::1'));
  });

  it('sets sockets up one at a time, and every one becomes ready with its chats', async () => {
    const [a, b, c] = await Promise.all([register(stack), register(stack), register(stack)]);
    const chat = await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'group', title: 'turns', memberIds: [b.id, c.id] } });
    expect(chat.status).toBe(201);
    // Opened together: two of them wait for the one set-up slot, and must get it in turn.
    const sockets = await Promise.all([a, b, c].map((u) => TestSocket.open(stack.wsUrl, u.accessToken)));
    open.push(...sockets);
    for (const socket of sockets) {
      socket.send({ op: 'ping' });
      await socket.next((f) => f.op === 'pong');
    }
    // Each socket joined the chat through its set-up (memberships): a message reaches all three.
    sockets[0]!.send({ op: 'send', chatId: chat.body.id, clientMsgId: 'turns-1', body: 'in turn' });
    for (const socket of sockets) await socket.next((f) => f.op === 'event' && f.type === 'message.created' && f.data?.body === 'in turn');
  });

  it('sets up sockets that wait together in one batch, each with its own chats and presence snapshot', async () => {
    // Four users in two separate chats; anna and carl are online already (their presence is what
    // the snapshots name). boris and dora then open two sockets each, all together.
    const [anna, boris, carl, dora] = await Promise.all([register(stack), register(stack), register(stack), register(stack)]);
    const chatAB = await http(stack, 'POST', '/api/v1/chats', { token: anna.accessToken, body: { type: 'group', title: 'batch ab', memberIds: [boris.id] } });
    const chatCD = await http(stack, 'POST', '/api/v1/chats', { token: carl.accessToken, body: { type: 'group', title: 'batch cd', memberIds: [dora.id] } });
    expect([chatAB.status, chatCD.status]).toEqual([201, 201]);
    const [annaSocket, carlSocket] = await Promise.all([TestSocket.open(stack.wsUrl, anna.accessToken), TestSocket.open(stack.wsUrl, carl.accessToken)]);
    open.push(annaSocket, carlSocket);
    const setupRequests = async () => {
      const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.messages}/metrics`)).text();
      return Number(/^rpc_requests_total\{[^}]*subject="[^"]*\.socketSetups"[^}]*outcome="ok"[^}]*\} (\d+)/m.exec(text)?.[1] ?? 0);
    };
    const requestsBefore = await setupRequests();
    const users = [boris, boris, dora, dora];
    const sockets = await Promise.all(users.map((u) => TestSocket.open(stack.wsUrl, u.accessToken)));
    open.push(...sockets);
    const requests = (await setupRequests()) - requestsBefore;
    // Whose sockets were set up together is announced online all the same (boris's two were
    // both the second when set up, and nobody was told he came online).
    await annaSocket.next((f) => f.op === 'presence' && f.userId === boris.id && f.online === true);
    await carlSocket.next((f) => f.op === 'presence' && f.userId === dora.id && f.online === true);
    // One slot (WS_SETUP_CONCURRENCY 1): the first socket's set-up runs alone, the three that
    // arrived meanwhile go in the next batch, so fewer requests than sockets.
    expect(requests).toBeGreaterThan(0);
    expect(requests).toBeLessThan(sockets.length);
    // Each socket's snapshot (before its first pong, which TestSocket.open waited for) names its
    // own chat peer online, and not the other chat's.
    for (const [i, socket] of sockets.entries()) {
      const [peer, stranger] = users[i] === boris ? [anna, carl] : [carl, anna];
      expect(socket.frames.some((f) => f.op === 'presence' && f.userId === peer.id && f.online === true)).toBe(true);
      expect(socket.frames.some((f) => f.op === 'presence' && f.userId === stranger.id)).toBe(false);
    }
    // Each joined its own chat only: a message in each chat reaches its members' sockets, and not
    // the other chat's.
    const event = (body: string) => (f: any) => f.op === 'event' && f.type === 'message.created' && f.data?.body === body;
    annaSocket.send({ op: 'send', chatId: chatAB.body.id, clientMsgId: 'batch-ab', body: 'to ab' });
    carlSocket.send({ op: 'send', chatId: chatCD.body.id, clientMsgId: 'batch-cd', body: 'to cd' });
    const [borisSockets, doraSockets] = [sockets.slice(0, 2), sockets.slice(2)];
    await Promise.all([...borisSockets.map((s) => s.next(event('to ab'))), ...doraSockets.map((s) => s.next(event('to cd')))]);
    // Both messages have gone out to their chats' sockets on this one gateway; a socket's pong
    // comes after anything sent to it before its ping, so a message to the wrong chat would be here.
    for (const socket of sockets) {
      socket.send({ op: 'ping' });
      await socket.next((f) => f.op === 'pong');
    }
    for (const socket of borisSockets) expect(socket.frames.some(event('to cd'))).toBe(false);
    for (const socket of doraSockets) expect(socket.frames.some(event('to ab'))).toBe(false);
  });
});
