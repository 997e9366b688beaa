import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, headers as natsHeaders, nkeyAuthenticator, type Msg, type NatsConnection } from '@nats-io/transport-node';
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager } from '@nats-io/jetstream';
import { ASSERTION_HEADER, RequestSigner, SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER } from '@parley/bus';
import { DEV_GATEWAY_SIGNING_KEY } from '@parley/config';
import { inboxPrefix, streamName, subjects, type Principal } from '@parley/contracts';
import { createUserKey } from '@parley/secrets';
import { http, register, startStack, type Account, type Stack } from '../stack.js';

/**
 * Issue 19's three attacks, as an attacker who reaches NATS would try them, against the test set-up
 * with authentication (a private nats-server with the users and permissions `npm run secrets`
 * generates; every service signs in as itself):
 *   1. requests on a service's subjects with forged claims (reading and writing as someone else,
 *      erasing or deleting through internal RPCs), also with another service's valid credentials;
 *   2. listening to the live subjects;
 *   3. publishing forged events into the streams, deleting streams.
 * Each refusal is awaited as a positive signal: the responder's `refused` answer, or the server's
 * permissions error.
 */
describe('the bus trust boundary: an attacker on NATS', () => {
  let stack: Stack;
  let ns: string;
  let alice: Account;
  let bob: Account;
  let chatId: string;
  let messageId: string;
  let admin: NatsConnection;
  const opened: NatsConnection[] = [];

  /** A connection with one principal's own credentials (as if they were stolen from that process). */
  async function connectAs(principal: Principal): Promise<NatsConnection> {
    const seed = stack.env.nats!.secretsOf(ns).nkeys[principal].seed;
    const nc = await connect({ servers: stack.env.natsUrl, authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)), inboxPrefix: inboxPrefix(ns, principal), name: `attacker-as-${principal}` });
    opened.push(nc);
    return nc;
  }

  /** Sends a request and returns the reply (failures come back in the `Nats-Service-Error*` headers). */
  async function ask(nc: NatsConnection, subject: string, payload: unknown, assertion?: string): Promise<Msg> {
    const h = natsHeaders();
    if (assertion) h.set(ASSERTION_HEADER, assertion);
    return nc.request(subject, JSON.stringify(payload), { timeout: 5_000, headers: h });
  }

  function expectRefused(reply: Msg): void {
    expect(reply.headers?.get(SERVICE_ERROR_CODE_HEADER)).toBe('403');
    expect(reply.headers?.get(SERVICE_ERROR_HEADER)).toBe('Request refused');
    expect(reply.data).toHaveLength(0);
  }

  function expectInvalid(reply: Msg, path: string): void {
    expect(reply.headers?.get(SERVICE_ERROR_CODE_HEADER)).toBe('400');
    expect(reply.headers?.get(SERVICE_ERROR_HEADER)).toMatch(new RegExp(`^Invalid request: ${path} `));
    expect(reply.data).toHaveLength(0);
  }

  /** Resolves with the server's permissions error for a subscription. */
  function subscriptionRefused(nc: NatsConnection, subject: string): Promise<Error> {
    return new Promise((resolve) => {
      nc.subscribe(subject, {
        callback: (err) => {
          if (err) resolve(err);
        },
      });
    });
  }

  const apiRequest = (overrides: Record<string, unknown>) => ({
    method: 'GET',
    path: '/api/v1/chats',
    query: {},
    body: null,
    auth: { userId: alice.id, sessionId: '01900000-0000-7000-8000-000000000001' },
    requestId: '01900000-0000-7000-8000-000000000002',
    ip: '203.0.113.9',
    userAgent: 'attacker',
    ...overrides,
  });

  beforeAll(async () => {
    stack = await startStack();
    if (!stack.env.nats) throw new Error('this suite needs the authenticated test NATS (nats-server at /usr/sbin/nats-server, NATS_URL unset)');
    ns = stack.env.namespace;
    [alice, bob] = [await register(stack, 'bus_alice'), await register(stack, 'bus_bob')];
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: alice.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const sent = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: alice.accessToken, body: { clientMsgId: 'bus-1', body: 'the secret plan' } });
    expect(sent.status).toBe(201);
    messageId = sent.body.id;
    admin = await stack.env.connectNats('test-admin');
  });

  afterAll(async () => {
    await Promise.all(opened.map((nc) => nc.close().catch(() => {})));
    await admin?.close();
    await stack?.stop();
  });

  it("the services' own work (register, chats, messages) needs nothing beyond their permissions", () => {
    // Anything a service was refused is in the server's log; so far only services have connected.
    expect(stack.env.nats!.violations).toEqual([]);
  });

  it('refuses a client with no credentials, and one with an nkey the server does not know', async () => {
    await expect(connect({ servers: stack.env.natsUrl, reconnect: false })).rejects.toThrow(/authorization/i);
    const stranger = createUserKey();
    await expect(connect({ servers: stack.env.natsUrl, reconnect: false, authenticator: nkeyAuthenticator(new TextEncoder().encode(stranger.seed)) })).rejects.toThrow(/authorization/i);
  });

  it("with the gateway's credentials, a request naming a user without the gateway's signature is refused and reads or writes nothing", async () => {
    const gw = await connectAs('gateway');
    // Read Alice's chats, her e-mail, her export.
    expectRefused(await ask(gw, subjects.api(ns, 'messages'), apiRequest({})));
    expectRefused(await ask(gw, subjects.api(ns, 'users'), apiRequest({ path: '/api/v1/users/me' })));
    expectRefused(await ask(gw, subjects.api(ns, 'users'), apiRequest({ path: '/api/v1/users/me/export' })));
    // Post as her.
    expectRefused(await ask(gw, subjects.api(ns, 'messages'), apiRequest({ method: 'POST', path: `/api/v1/chats/${chatId}/messages`, body: { clientMsgId: 'forged', body: 'forged by the attacker' } })));
    // Internal methods that act for a user.
    expectRefused(await ask(gw, subjects.rpc(ns, 'messages', 'memberships'), { userId: alice.id }));
    expectRefused(await ask(gw, subjects.rpc(ns, 'messages', 'socketSetups'), { userIds: [alice.id] }));
    expectRefused(await ask(gw, subjects.rpc(ns, 'users', 'presenceVisibleMany'), { viewers: [{ viewerId: alice.id, chatPeerIds: [bob.id] }] }));
    expectRefused(await ask(gw, subjects.rpc(ns, 'messages', 'markRead'), { chatId, userId: bob.id, messageId }));
    // What someone has uploaded and not sent yet (how many files, how many bytes).
    expectRefused(await ask(gw, subjects.rpc(ns, 'messages', 'pendingUploads'), { userId: alice.id }));
    // Signed with the published development key: not the gateway's key here.
    const dev = new RequestSigner(DEV_GATEWAY_SIGNING_KEY);
    const payload = Buffer.from(JSON.stringify(apiRequest({})));
    const reply = await gw.request(subjects.api(ns, 'messages'), payload, { timeout: 5_000, headers: withAssertion(dev.assert(subjects.api(ns, 'messages'), payload)) });
    expectRefused(reply);

    const history = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: alice.accessToken });
    expect(history.body.items.map((m: any) => m.body)).toEqual(['the secret plan']);
  });

  it('a captured signed request cannot be replayed, sent to another service, or altered', async () => {
    const captured = new Promise<Msg>((resolve) => {
      // The wiretap: only the admin may listen there; it stands for a capture by any means.
      const sub = admin.subscribe(subjects.api(ns, 'messages'), { callback: (_err, msg) => (sub.unsubscribe(), resolve(msg)) });
    });
    await admin.flush();
    expect((await http(stack, 'GET', '/api/v1/chats', { token: alice.accessToken })).status).toBe(200);
    const original = await captured;
    const assertion = original.headers!.get(ASSERTION_HEADER);
    expect(assertion).toMatch(/^v1\./);
    const gw = await connectAs('gateway');
    const replay = (subject: string, data: Uint8Array) => gw.request(subject, data, { timeout: 5_000, headers: withAssertion(assertion) });
    expectRefused(await replay(subjects.api(ns, 'messages'), original.data));
    expectRefused(await replay(subjects.api(ns, 'users'), original.data));
    const altered = Buffer.from(JSON.stringify({ ...original.json<Record<string, unknown>>(), auth: { userId: bob.id, sessionId: 'x' } }));
    expectRefused(await replay(subjects.api(ns, 'messages'), altered));
  });

  it('erasing and deleting through internal methods acts only on what the erasure ledger names', async () => {
    const retention = await connectAs('retention');
    // Retention may call these, but a request is not proof: nobody is in the ledger.
    expect((await ask(retention, subjects.rpc(ns, 'users', 'reerase'), { userId: alice.id, purgeMessages: true })).json()).toEqual({ erased: false });
    expect((await ask(retention, subjects.rpc(ns, 'messages', 'redelete'), { messageIds: [messageId] })).json()).toEqual({ deleted: 0 });
    // The gateway may not even ask.
    await expect(ask(await connectAs('gateway'), subjects.rpc(ns, 'users', 'reerase'), { userId: alice.id, purgeMessages: true })).rejects.toThrow(/permissions violation/i);
    // users may ask for an export, but only with the user's own signed request as proof.
    expectRefused(await ask(await connectAs('users'), subjects.rpc(ns, 'messages', 'export'), { userId: alice.id, proof: null }));
    // A request outside its method's schema does not reach the handler at all.
    expectInvalid(await ask(retention, subjects.rpc(ns, 'users', 'reerase'), { userId: alice.id }), '/purgeMessages');
    expectInvalid(await ask(retention, subjects.rpc(ns, 'messages', 'redelete'), { messageIds: Array.from({ length: 1001 }, () => messageId) }), '/messageIds');
    expectInvalid(await ask(retention, subjects.rpc(ns, 'messages', 'redelete'), { messageIds: [messageId], olderThan: 0 }), '/olderThan');

    expect((await http(stack, 'POST', '/api/v1/auth/login', { body: { login: alice.username, password: alice.password } })).status).toBe(200);
    const history = await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: bob.accessToken });
    expect(history.body.items.map((m: any) => [m.id, m.body])).toEqual([[messageId, 'the secret plan']]);
  });

  it('only the gateway may listen to the live chat and receipt subjects', async () => {
    for (const principal of ['users', 'messages', 'retention', 'backup'] as const) {
      const nc = await connectAs(principal);
      const refused = await subscriptionRefused(nc, `${ns}.live.chat.*`);
      expect(refused.message).toMatch(/permissions violation for subscription/i);
      expect((await subscriptionRefused(nc, `${ns}.live.receipt.*.*`)).message).toMatch(/permissions violation/i);
    }
  });

  it('only a gateway may send or receive profile notices (a forged one would reach every watcher of the user)', async () => {
    for (const principal of ['users', 'messages', 'retention', 'backup'] as const) {
      expect((await subscriptionRefused(await connectAs(principal), subjects.allProfiles(ns))).message).toMatch(/permissions violation for subscription/i);
    }
    const gw = await connectAs('gateway');
    const received: string[] = [];
    let genuine!: () => void;
    const arrived = new Promise<void>((resolve) => (genuine = resolve));
    gw.subscribe(subjects.allProfiles(ns), {
      callback: (err, msg) => {
        if (err) return;
        received.push(msg.string());
        if (msg.string() === 'genuine') genuine();
      },
    });
    await gw.flush();
    // Not backup: it restores whole namespaces and may publish anywhere in one (docs/security.md).
    for (const principal of ['users', 'messages', 'retention'] as const) {
      const nc = await connectAs(principal);
      nc.publish(subjects.profile(ns, alice.id), 'forged');
      // Once the server answers the flush it has handled (and refused) the publish before it.
      await nc.flush();
    }
    // The positive signal: a gateway's own notice, published after the refused ones, arrives alone.
    (await connectAs('gateway')).publish(subjects.profile(ns, alice.id), 'genuine');
    await arrived;
    expect(received).toEqual(['genuine']);
  });

  it("no process may publish to another's streams, read another's requests, or delete a stream it does not own", async () => {
    const adm = await jetstreamManager(admin);
    const lastSeq = async (key: 'users' | 'audit' | 'revocations' | 'erasures') => (await adm.streams.info(streamName(ns, key))).state.last_seq;
    const before = { users: await lastSeq('users'), audit: await lastSeq('audit'), revocations: await lastSeq('revocations'), erasures: await lastSeq('erasures') };
    const gw = await connectAs('gateway');
    const js = jetstream(gw);
    const forged = JSON.stringify({ type: 'UserRegistered', version: 1, data: { userId: alice.id } });
    await expect(js.publish(subjects.user(ns, alice.id), forged)).rejects.toThrow(/permissions violation/i);
    await expect(js.publish(subjects.audit(ns, alice.id), forged)).rejects.toThrow(/permissions violation/i);
    await expect(js.publish(subjects.revocation(ns, 'x'), forged)).rejects.toThrow(/permissions violation/i);
    const gwm = await jetstreamManager(gw, { checkAPI: false });
    await expect(gwm.streams.delete(streamName(ns, 'chats'))).rejects.toThrow(/permissions violation/i);
    await expect(gwm.streams.info(streamName(ns, 'users'))).rejects.toThrow(/permissions violation/i);
    // Another service's requests (and the tokens, e-mails and passwords in them).
    expect((await subscriptionRefused(gw, subjects.api(ns, 'users'))).message).toMatch(/permissions violation/i);
    expect((await subscriptionRefused(gw, `${ns}.rpc.users.*`)).message).toMatch(/permissions violation/i);
    expect((await subscriptionRefused(gw, '_INBOX_' + ns + '_users.>')).message).toMatch(/permissions violation/i);

    const msgs = await jetstreamManager(await connectAs('messages'), { checkAPI: false });
    await expect(msgs.streams.delete(streamName(ns, 'users'))).rejects.toThrow(/permissions violation/i);
    await expect(jetstream(await connectAs('messages')).publish(subjects.user(ns, alice.id), forged)).rejects.toThrow(/permissions violation/i);
    // Retention reads the ledger but may not write it (the ledger is what lets reerase act).
    await expect(jetstream(await connectAs('retention')).publish(subjects.erasedUser(ns, alice.id), forged)).rejects.toThrow(/permissions violation/i);

    // Nothing of it landed, and every stream is still there.
    expect({ users: await lastSeq('users'), audit: await lastSeq('audit'), revocations: await lastSeq('revocations'), erasures: await lastSeq('erasures') }).toEqual(before);
    expect((await adm.streams.info(streamName(ns, 'chats'))).config.name).toBe(streamName(ns, 'chats'));
  });

  it("a push consumer made with the gateway's nkey delivers nothing into another stream: NATS delivers only to a subject someone subscribes to, and the gateway may not subscribe to the users stream's subjects", async () => {
    // A consumer's deliver_subject is in the request's body, which permissions do not check, and a
    // stream stores what is delivered onto its subjects (docs/security.md).
    const adm = await jetstreamManager(admin);
    const users = streamName(ns, 'users');
    const before = (await adm.streams.info(users)).state.last_seq;
    const gw = await connectAs('gateway');
    const bucket = `KV_${subjects.presenceBucket(ns)}`;
    const forged = `$KV.${subjects.presenceBucket(ns)}.forged`;
    await jetstream(gw).publish(forged, JSON.stringify({ type: 'PasswordChanged', version: 1, data: { userId: alice.id } }));
    const jsm = await jetstreamManager(gw, { checkAPI: false });
    const intoUsers = await jsm.consumers.add(bucket, { ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: forged, deliver_subject: subjects.user(ns, alice.id) });
    expect((await subscriptionRefused(gw, subjects.user(ns, alice.id))).message).toMatch(/permissions violation/i);
    // The positive signal: the same consumer made to deliver where the gateway does listen (its own
    // inbox) delivers the message at once.
    const inbox = `${inboxPrefix(ns, 'gateway')}.forged`;
    const delivered = new Promise<void>((resolve) => gw.subscribe(inbox, { max: 1, callback: () => resolve() }));
    const intoInbox = await jsm.consumers.add(bucket, { ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All, filter_subject: forged, deliver_subject: inbox });
    await delivered;
    expect((await adm.consumers.info(bucket, intoUsers.name)).delivered.stream_seq).toBe(0);
    expect((await adm.streams.info(users)).state.last_seq).toBe(before);
    for (const c of [intoUsers, intoInbox]) await adm.consumers.delete(bucket, c.name);
  });

  it("neither the gateway nor the retention job may change its bucket's settings: an update could add the users stream as a source of a bucket it reads", async () => {
    const adm = await jetstreamManager(admin);
    for (const [principal, bucket] of [['gateway', `KV_${subjects.lastSeenBucket(ns)}`], ['gateway', `KV_${subjects.presenceBucket(ns)}`], ['retention', `KV_${ns}_retention`]] as const) {
      // Every bucket exists: users and messages create them at start (declaredBuckets).
      const before = await adm.streams.info(bucket);
      const jsm = await jetstreamManager(await connectAs(principal), { checkAPI: false });
      const sourced = { ...before.config, sources: [{ name: streamName(ns, 'users') }] };
      await expect(jsm.streams.update(bucket, sourced), `${principal} on ${bucket}`).rejects.toThrow(/permissions violation/i);
      // Nor by creating it again with other settings (a create cannot change an existing stream).
      await expect(jsm.streams.add(sourced), `${principal} on ${bucket}`).rejects.toThrow(/already in use|permissions violation/i);
      const after = await adm.streams.info(bucket);
      expect(after.config.sources ?? [], bucket).toEqual([]);
      expect(after.state.messages, bucket).toBe(before.state.messages);
    }
  });
});

function withAssertion(assertion: string | undefined) {
  const h = natsHeaders();
  if (assertion) h.set(ASSERTION_HEADER, assertion);
  return h;
}
