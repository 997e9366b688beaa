import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, storedMessages, TestSocket, type Account, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

/**
 * Issue 23, finding 8: anyone could add anyone to groups (and again after they left), adding a
 * contact one-sidedly revealed presence, there was no block list and no limit on groups. Now:
 * privacy settings (`groupAdd`, `presence`: everyone / contacts / nobody; the defaults keep the
 * old behaviour), a block list, and GROUPS_PER_DAY.
 */
describe('privacy settings, blocks and group limits', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ GROUPS_PER_DAY: '4' });
  });
  afterAll(async () => stack?.stop());

  const group = (owner: Account, members: Account[]) =>
    http(stack, 'POST', '/api/v1/chats', { token: owner.accessToken, body: { type: 'group', title: 'g', memberIds: members.map((m) => m.id) } });
  const privacy = (who: Account, body: object) => http(stack, 'PATCH', '/api/v1/users/me/privacy', { token: who.accessToken, body });

  it('keeps the old behaviour by default, and validates settings', async () => {
    const ann = await register(stack);
    expect((await http(stack, 'GET', '/api/v1/users/me/privacy', { token: ann.accessToken })).body).toEqual({ groupAdd: 'everyone', presence: 'everyone' });
    for (const bad of [{}, { groupAdd: 'friends' }, { presence: true }, { other: 'x' }]) expectError(await privacy(ann, bad), 400, 'invalid_request');
    expect((await privacy(ann, { presence: 'contacts' })).body).toEqual({ groupAdd: 'everyone', presence: 'contacts' });
    expect((await http(stack, 'GET', '/api/v1/users/me/privacy', { token: ann.accessToken })).body).toEqual({ groupAdd: 'everyone', presence: 'contacts' });
  });

  it('a block stops new chats, group adds and re-adds from the blocked user, until unblocked', async () => {
    const [ann, bob, cat] = [await register(stack), await register(stack), await register(stack)];
    const shared = await group(bob, [cat]);
    expect(shared.status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: ann.accessToken, body: { userId: bob.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: ann.accessToken, body: { userId: bob.id } })).status).toBe(200);
    expect((await http(stack, 'GET', '/api/v1/users/me/blocks', { token: ann.accessToken })).body.items.map((b: { userId: string }) => b.userId)).toEqual([bob.id]);
    // Before: all three went through.
    expectError(await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'direct', userId: ann.id } }), 403, 'forbidden');
    expectError(await group(bob, [ann, cat]), 403, 'forbidden');
    expectError(await http(stack, 'POST', `/api/v1/chats/${shared.body.id}/members`, { token: bob.accessToken, body: { userId: ann.id } }), 403, 'forbidden');
    // Others still can; and after unblocking, so can bob.
    expect((await group(cat, [ann])).status).toBe(201);
    expect((await http(stack, 'DELETE', `/api/v1/users/me/blocks/${bob.id}`, { token: ann.accessToken })).status).toBe(204);
    expect((await http(stack, 'POST', `/api/v1/chats/${shared.body.id}/members`, { token: bob.accessToken, body: { userId: ann.id } })).status).toBe(201);
    expectError(await http(stack, 'DELETE', `/api/v1/users/me/blocks/${bob.id}`, { token: ann.accessToken }), 404, 'not_found');
  });

  it('groupAdd: contacts admits only the user\'s own contacts; nobody admits no one', async () => {
    const [dan, eve, fay] = [await register(stack), await register(stack), await register(stack)];
    await privacy(dan, { groupAdd: 'contacts' });
    expectError(await group(eve, [dan]), 403, 'forbidden');
    // eve adding dan as a contact changes nothing: it is dan's list that counts.
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: eve.accessToken, body: { userId: dan.id } })).status).toBe(201);
    expectError(await group(eve, [dan]), 403, 'forbidden');
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: dan.accessToken, body: { userId: eve.id } })).status).toBe(201);
    expect((await group(eve, [dan])).status).toBe(201);
    await privacy(dan, { groupAdd: 'nobody' });
    expectError(await group(eve, [dan]), 403, 'forbidden');
    // A direct chat is still possible: groupAdd is about groups.
    expect((await http(stack, 'POST', '/api/v1/chats', { token: fay.accessToken, body: { type: 'direct', userId: dan.id } })).status).toBe(201);
  });

  it('presence: contacts tells mutual contacts and chat peers only; never a blocked user', async () => {
    const [gus, mutual, oneSided, peer, blockedPeer] = [await register(stack), await register(stack), await register(stack), await register(stack), await register(stack)];
    await privacy(gus, { presence: 'contacts' });
    for (const who of [mutual, oneSided]) expect((await http(stack, 'POST', '/api/v1/contacts', { token: who.accessToken, body: { userId: gus.id } })).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: gus.accessToken, body: { userId: mutual.id } })).status).toBe(201);
    expect((await group(gus, [peer, blockedPeer])).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: gus.accessToken, body: { userId: blockedPeer.id } })).status).toBe(201);
    const sockets = await Promise.all([mutual, oneSided, peer, blockedPeer].map((a) => TestSocket.open(stack.wsUrl, a.accessToken)));
    await Promise.all(sockets.map((s) => s.sync()));
    const [mutualSocket, oneSidedSocket, peerSocket, blockedSocket] = sockets as [TestSocket, TestSocket, TestSocket, TestSocket];
    const online = await TestSocket.open(stack.wsUrl, gus.accessToken);
    const fromGus = (f: { op: string; userId?: string }) => f.op === 'presence' && f.userId === gus.id;
    expect(await mutualSocket.next(fromGus)).toEqual({ op: 'presence', userId: gus.id, online: true });
    expect(await peerSocket.next(fromGus)).toEqual({ op: 'presence', userId: gus.id, online: true });
    // One notice goes to every socket on this gateway in one pass: once these two have it, the
    // others would have it too. A round trip on each makes sure nothing is still in flight.
    await Promise.all([oneSidedSocket.sync(), blockedSocket.sync()]);
    expect(oneSidedSocket.frames.filter(fromGus)).toEqual([]);
    expect(blockedSocket.frames.filter(fromGus)).toEqual([]);
    online.close();
    for (const s of sockets) s.close();
  });

  it('presence: nobody tells no one, chat peers included', async () => {
    const [hal, peer, other] = [await register(stack), await register(stack), await register(stack)];
    await privacy(hal, { presence: 'nobody' });
    expect((await group(hal, [peer])).status).toBe(201);
    expect((await group(other, [peer])).status).toBe(201);
    const peerSocket = await TestSocket.open(stack.wsUrl, peer.accessToken);
    await peerSocket.sync();
    const halSocket = await TestSocket.open(stack.wsUrl, hal.accessToken);
    await halSocket.sync();
    // The positive signal: `other` (default settings) coming online reaches peer after hal did.
    const otherSocket = await TestSocket.open(stack.wsUrl, other.accessToken);
    expect(await peerSocket.next((f) => f.op === 'presence' && f.userId === other.id)).toEqual({ op: 'presence', userId: other.id, online: true });
    expect(peerSocket.frames.filter((f) => f.op === 'presence' && f.userId === hal.id)).toEqual([]);
    for (const s of [peerSocket, halSocket, otherSocket]) s.close();
  });

  it('last seen: nobody and a blocked viewer never get it, live or on connect, and nobody keeps none', async () => {
    const [hal, gus, other, viewer, witness] = [await register(stack), await register(stack), await register(stack), await register(stack), await register(stack)];
    await privacy(hal, { presence: 'nobody' });
    expect((await group(other, [viewer, witness, hal, gus])).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/users/me/blocks', { token: gus.accessToken, body: { userId: viewer.id } })).status).toBe(201);
    const ns = stack.env.namespace;
    const nc = await stack.env.connectNats();
    // The gateways' notices as they go out: the positive signal that a user's going offline was
    // handled (the last seen time is written before its notice, and removed right after if hidden).
    const notices: { userId: string; online: boolean; lastSeen?: string }[] = [];
    nc.subscribe(`${ns}.presence.*`, {
      callback: (_err, msg) => {
        notices.push(msg.json());
      },
    });
    const noticeOf = (who: Account, online: boolean) => eventually(async () => notices.find((n) => n.userId === who.id && n.online === online), 5_000, 'notice');
    const storedKeys = async () => (await storedMessages(nc, `KV_${ns}_lastseen`)).map((m) => m.subject);

    const [viewerSocket, witnessSocket] = [await TestSocket.open(stack.wsUrl, viewer.accessToken), await TestSocket.open(stack.wsUrl, witness.accessToken)];
    // Closed once its coming online was announced: the two notices cannot cross.
    const goOffline = async (who: Account) => {
      const socket = await TestSocket.open(stack.wsUrl, who.accessToken);
      await noticeOf(who, true);
      socket.close();
      return noticeOf(who, false);
    };
    expect(await goOffline(hal)).toEqual({ userId: hal.id, online: false, chatIds: [], watcherIds: [], blocked: [] });
    // `nobody`: no time is kept either.
    await eventually(async () => ((await storedKeys()).includes(`$KV.${ns}_lastseen.${hal.id}`) ? undefined : true), 5_000, 'hal has no last seen');
    expect((await goOffline(gus)).lastSeen).toEqual(expect.any(String));
    const fromGus = await witnessSocket.next((f) => f.op === 'presence' && f.userId === gus.id && !f.online);
    expect(fromGus.lastSeen).toEqual(expect.any(String));
    // Then other goes offline: the viewer has every notice published before it, and only other's.
    await goOffline(other);
    expect(await viewerSocket.next((f) => f.op === 'presence' && f.userId === other.id && !f.online)).toEqual({ op: 'presence', userId: other.id, online: false, lastSeen: expect.any(String) });
    expect(viewerSocket.frames.filter((f) => f.op === 'presence' && (f.userId === hal.id || f.userId === gus.id))).toEqual([]);
    viewerSocket.close();

    // On connect: other's last seen (the positive signal, in the same snapshot), neither hal's nor
    // gus's (the witness, online, is named too).
    const about = (socket: TestSocket) => socket.frames.filter((f) => f.op === 'presence' && [hal.id, gus.id, other.id].includes(f.userId));
    const again = await TestSocket.open(stack.wsUrl, viewer.accessToken);
    expect(about(again)).toEqual([{ op: 'presence', userId: other.id, online: false, lastSeen: expect.any(String) }]);
    // The witness may see both gus and other (and not hal).
    const witnessAgain = await TestSocket.open(stack.wsUrl, witness.accessToken);
    expect(about(witnessAgain).map((f) => f.userId).sort()).toEqual([gus.id, other.id].sort());
    for (const s of [again, witnessAgain, witnessSocket]) s.close();
    // A change to `nobody` removes the time kept until then (it stayed until his next offline).
    expect((await storedKeys()).includes(`$KV.${ns}_lastseen.${gus.id}`)).toBe(true);
    await privacy(gus, { presence: 'nobody' });
    expect(await storedKeys()).not.toContain(`$KV.${ns}_lastseen.${gus.id}`);
    await nc.close();
  });

  it('profile changes follow the presence audience: under nobody only the user\'s own devices are told, under contacts no one-sided contact', async () => {
    const [kim, peer, oneSided] = [await register(stack), await register(stack), await register(stack)];
    expect((await group(kim, [peer])).status).toBe(201);
    expect((await http(stack, 'POST', '/api/v1/contacts', { token: oneSided.accessToken, body: { userId: kim.id } })).status).toBe(201);
    const [peerSocket, oneSidedSocket, kimPhone] = await Promise.all([peer, oneSided, kim].map((a) => TestSocket.open(stack.wsUrl, a.accessToken)));
    const fromKim = (f: { op: string; user?: { id: string } }) => f.op === 'profile' && f.user?.id === kim.id;
    const rename = async (displayName: string) => expect((await http(stack, 'PATCH', '/api/v1/users/me', { token: kim.accessToken, body: { displayName } })).status).toBe(200);

    await privacy(kim, { presence: 'nobody' });
    await rename('Kim Quiet');
    // The positive signal: kim's other device has the frame, sent in the same pass as any other
    // socket of this gateway would have been.
    expect((await kimPhone!.next(fromKim)).user.displayName).toBe('Kim Quiet');
    await Promise.all([peerSocket!.sync(), oneSidedSocket!.sync()]);
    expect(peerSocket!.frames.filter(fromKim)).toEqual([]);
    expect(oneSidedSocket!.frames.filter(fromKim)).toEqual([]);
    // The name itself is public: a read shows it.
    expect((await http(stack, 'GET', `/api/v1/users/${kim.id}`, { token: peer.accessToken })).body.displayName).toBe('Kim Quiet');

    await privacy(kim, { presence: 'contacts' });
    await rename('Kim Seen');
    expect((await peerSocket!.next(fromKim)).user.displayName).toBe('Kim Seen');
    await oneSidedSocket!.sync();
    expect(oneSidedSocket!.frames.filter(fromKim)).toEqual([]);
    for (const s of [peerSocket!, oneSidedSocket!, kimPhone!]) s.close();
  });

  it('limits the groups one account creates a day (GROUPS_PER_DAY)', async () => {
    const [ivy, jon] = [await register(stack), await register(stack)];
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await group(ivy, [jon])).status);
    expect(statuses).toEqual([201, 201, 201, 201, 429]);
    // Direct chats are not groups.
    expect((await http(stack, 'POST', '/api/v1/chats', { token: ivy.accessToken, body: { type: 'direct', userId: jon.id } })).status).toBe(201);
  });

  it('holds GROUPS_PER_DAY against a burst of creations sent at once', async () => {
    const kai = await register(stack);
    // Before, every request of the burst counted the same groups (none yet) and all were created.
    const statuses = (await Promise.all(Array.from({ length: 10 }, () => http(stack, 'POST', '/api/v1/chats', { token: kai.accessToken, body: { type: 'group', title: 'burst', memberIds: [] } })))).map((a) => a.status);
    expect(statuses.filter((s) => s === 201)).toHaveLength(4);
    expect(statuses.filter((s) => s === 429)).toHaveLength(6);
  });
});
