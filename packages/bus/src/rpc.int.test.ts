import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Msg } from '@nats-io/transport-node';
import { subjects } from '@parley/contracts';
import { createLogger } from '@parley/log';
import { newSigningKeyPair } from '@parley/secrets';
import { createMetrics } from '@parley/telemetry';
import { createTestEnv, type TestEnv } from '@parley/testing';
import { RequestSigner, RequestVerifier } from './assertion.js';
import { connectBus, type Bus } from './connect.js';
import { callRpc, requestJson, serveRpc, type RpcClient, type RpcHandlers } from './rpc.js';
import { InvalidRequestError, RemoteFailureError, RequestRefusedError, SERVICE_ERROR_CODE_HEADER, SERVICE_ERROR_HEADER, ServiceUnavailableError } from './rpc-failure.js';

const id = (n: number) => `01900000-0000-7000-8000-${n.toString(16).padStart(12, '0')}`;

/**
 * serveRpc and callRpc on a real NATS server: requests are checked against their method's schema
 * before any handler runs, replies against theirs before any caller sees them, and failures travel
 * in the services protocol's headers.
 */
describe('RPC schemas on the bus', () => {
  let env: TestEnv;
  let server: Bus;
  let caller: Bus;
  let client: RpcClient;
  let ns: string;
  const lines: { level: number; msg: string; subject?: string; path?: string }[] = [];
  const log = createLogger({ service: 'test', level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
  const metrics = createMetrics('test');
  /** How often each handler ran: a request refused before its handler leaves these alone. */
  const calls = { existing: 0, watchers: 0, reerase: 0, retentionPreview: 0 };

  const handlers: RpcHandlers<'users'> = {
    ping: async () => ({ ok: true }),
    existing: async (req) => {
      calls.existing++;
      return { userIds: req.userIds.slice(0, 1) };
    },
    watchers: async (req) => {
      calls.watchers++;
      return { userIds: [req.userId], chatPeers: true, blocked: [] };
    },
    admission: async (req) => ({ existing: req.userIds, refused: [] }),
    presenceVisibleMany: async (req) => ({ userIds: req.viewers.map((v) => v.chatPeerIds) }),
    reerase: async () => {
      calls.reerase++;
      throw new Error('SELECT secret_column FROM users.users failed');
    },
    retentionPreview: async () => {
      calls.retentionPreview++;
      // Outside the reply schema, as a responder of another version or with a bug would answer.
      return { auditEntries: 3, resetTokens: '1' } as never;
    },
  };

  const subject = (name: string) => subjects.rpc(ns, 'users', name);
  const raw = (name: string, data: string | Uint8Array): Promise<Msg> => caller.nc.request(subject(name), data, { timeout: 5_000 });

  beforeAll(async () => {
    env = await createTestEnv();
    ns = env.namespace;
    const keys = newSigningKeyPair();
    server = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'rpc-server', log });
    caller = await connectBus({ url: env.natsUrl, identity: env.busIdentity, name: 'rpc-caller', log });
    client = { nc: caller.nc, signer: new RequestSigner(keys.seed) };
    serveRpc(server.nc, ns, 'users', handlers, log, metrics, new RequestVerifier(keys.publicKey));
    await server.nc.flush();
  });
  afterAll(async () => {
    await caller?.nc.close();
    await server?.nc.close();
    await env?.cleanup();
  });

  it('answers a valid request, unsigned and signed, with a reply that passed its schema', async () => {
    expect(await callRpc(client, ns, 'users.existing', { userIds: [id(1), id(2)] })).toEqual({ userIds: [id(1)] });
    expect(await callRpc(client, ns, 'users.watchers', { userId: id(3) })).toEqual({ userIds: [id(3)], chatPeers: true, blocked: [] });
    expect(await callRpc(client, ns, 'users.ping', {})).toEqual({ ok: true });
    expect(calls).toMatchObject({ existing: 1, watchers: 1 });
  });

  it('refuses a malformed request as invalid, never calling the handler', async () => {
    const before = { ...calls };
    const malformed: [unknown, string][] = [
      [{ userIds: id(1) }, '/userIds'], // wrong type
      [{}, '/userIds'], // missing field
      [{ userIds: Array.from({ length: 1001 }, (_, i) => id(i)) }, '/userIds'], // beyond maxItems
      [{ userIds: [id(1)], asAdmin: true }, '/asAdmin'], // unknown field
      [{ userIds: ['not-an-id'] }, '/userIds/0'],
      [null, '/'],
    ];
    for (const [req, path] of malformed) {
      const error = await callRpc(client, ns, 'users.existing', req as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(InvalidRequestError);
      // Not "try again later": the same request would be refused again.
      expect(error).not.toBeInstanceOf(ServiceUnavailableError);
      expect((error as Error).message).toContain(`Invalid request: ${path} `);
    }
    // A signed method: the signature is good, the payload is not.
    await expect(callRpc(client, ns, 'users.watchers', { userId: 'alice' })).rejects.toBeInstanceOf(InvalidRequestError);
    expect(calls).toEqual(before);
  });

  it('answers a failure in the services protocol headers with an empty body', async () => {
    const invalid = await raw('existing', 'not json');
    expect(invalid.headers?.get(SERVICE_ERROR_CODE_HEADER)).toBe('400');
    expect(invalid.headers?.get(SERVICE_ERROR_HEADER)).toBe('Invalid request: not JSON');
    expect(invalid.data).toHaveLength(0);

    // A signed method asked without the signature: refused before its payload is even read.
    const unsigned = await raw('watchers', JSON.stringify({ userId: 'alice' }));
    expect(unsigned.headers?.get(SERVICE_ERROR_CODE_HEADER)).toBe('403');
    await expect(requestJson({ nc: caller.nc }, subject('watchers'), { userId: id(3) })).rejects.toBeInstanceOf(RequestRefusedError);
    expect(calls.watchers).toBe(1);

    // A handler that throws: a failure that says nothing of why (the reason is in the responder's log).
    const failed = await raw('reerase', JSON.stringify({ userId: id(1), purgeMessages: false }));
    expect([failed.headers?.get(SERVICE_ERROR_CODE_HEADER), failed.headers?.get(SERVICE_ERROR_HEADER)]).toEqual(['500', 'Internal error']);
    const error = await callRpc(client, ns, 'users.reerase', { userId: id(1), purgeMessages: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFailureError);
    expect((error as Error).message).not.toMatch(/secret_column/);
    expect(calls.reerase).toBe(2);
  });

  it('rejects a reply that does not match its schema, though the responder answered', async () => {
    const req = { auditCutoff: new Date().toISOString(), resetCutoff: new Date().toISOString() };
    // What the responder sent, as it arrives:
    expect((await raw('retentionPreview', JSON.stringify(req))).json()).toEqual({ auditEntries: 3, resetTokens: '1' });
    // What a caller gets instead of it:
    const error = await callRpc(client, ns, 'users.retentionPreview', req).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RemoteFailureError);
    expect((error as Error).message).toMatch(/answered outside its reply schema: \/resetTokens /);
    expect(calls.retentionPreview).toBe(2);
  });

  it('logs invalid requests boundedly, with the subject and path and never the payload', async () => {
    const invalidLogged = () => lines.filter((l) => l.msg === 'request refused: invalid' && l.subject === subject('existing'));
    for (let i = 0; i < 110; i++) {
      await expect(callRpc(client, ns, 'users.existing', { userIds: ['hunter2-password'] })).rejects.toBeInstanceOf(InvalidRequestError);
    }
    expect(invalidLogged()).toHaveLength(100);
    expect(invalidLogged().at(-1)).toMatchObject({ subject: subject('existing'), path: '/userIds/0' });
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    const counted = (await metrics.rpcRequests.get()).values.find((v) => v.labels.subject === subject('existing') && v.labels.outcome === 'invalid');
    expect(counted?.value).toBeGreaterThanOrEqual(110);
  });
});
