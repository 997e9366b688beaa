import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from '@nats-io/transport-node';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { erasureApplied } from './erasure-applied.js';
import { holdLock } from './pg-lock.js';
import { http, register, startServices, storedMessages, type Account, type Services } from './stack.js';

/**
 * A file the erased person sent that someone else forwarded (api.md lets a sender attach a file
 * already visible to them): an erasure with a purge deleted its upload record from the stream at
 * once, while the forward kept the row live. A rebuild then had no event to make the row: the
 * forward showed no file, its download answered 404, and the next retention pass deleted the file
 * from disk. The file stays with the forward until that goes (docs/decisions.md). The same held for
 * any AttachmentDeleted the projection did not apply because a message picked the file up first.
 */
describe('an upload record stays while a message carries its file', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let nc: NatsConnection;
  let files: string;
  let ann: Account;
  let bob: Account;
  let cat: Account;
  const rows = async (sql: string, params: unknown[] = []) => Number((await db.query(sql, params)).rows[0].n);

  beforeAll(async () => {
    files = mkdtempSync(path.join(tmpdir(), 'parley-erasure-fwd-'));
    env = await createTestEnv();
    vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000', ATTACHMENTS_DIR: files, MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-erasure-fwd-mail-')) };
    stack = await startServices(vars);
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    nc = await env.connectNats();
    [ann, bob, cat] = [await register(stack), await register(stack), await register(stack)];
  });
  afterAll(async () => {
    await nc?.close();
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('erasure with a purge: a file someone forwarded keeps its row, record and file through a rebuild and a retention pass, and goes with the forward', async () => {
    const direct = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const group = (await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'group', title: 'fwd', memberIds: [cat.id] } })).body.id;
    const form = new FormData();
    form.append('file', new Blob(['a photo of the cat'], { type: 'text/plain' }), 'photo.txt');
    const fileId = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: form })).json()) as { id: string }).id;
    const sent = await http(stack, 'POST', `/api/v1/chats/${direct}/messages`, { token: ann.accessToken, body: { clientMsgId: 'photo', body: 'look', attachmentIds: [fileId] } });
    expect(sent.status).toBe(201);
    // Bob may forward what he can see: once the message is stored for him.
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.message_attachments WHERE attachment_id = $1', [fileId])) === 1 || undefined);
    const forward = await http(stack, 'POST', `/api/v1/chats/${group}/messages`, { token: bob.accessToken, body: { clientMsgId: 'fwd', body: 'from ann', attachmentIds: [fileId] } });
    expect(forward.status).toBe(201);

    expect((await http(stack, 'DELETE', '/api/v1/users/me', { token: ann.accessToken, body: { password: ann.password, purgeMessages: true } })).status).toBe(202);
    // Done when the erasure process has applied her UserErased, her messages are gone and the
    // attachments they let go of have been looked at by the release reactor.
    await erasureApplied(nc, db, env.namespace, ann.id);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.messages WHERE sender_id = $1', [ann.id])) === 0 || undefined, 20_000, 'her messages gone');
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.released_attachments')) === 0 || undefined, 20_000, 'releases handled');

    const forwardNow = async () =>
      ((await http(stack, 'GET', `/api/v1/chats/${group}/messages`, { token: cat.accessToken })).body.items as { id: string; attachments: { id: string }[] }[]).find((m) => m.id === forward.body.id);
    const download = async () => fetch(`${stack.baseUrl}/api/v1/attachments/${fileId}`, { headers: { authorization: `Bearer ${cat.accessToken}` } });
    expect((await forwardNow())?.attachments.map((a) => a.id)).toEqual([fileId]);
    const uploadRecords = async () =>
      (await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.subject === `${env.namespace}.attachment.${fileId}`).map((m) => (JSON.parse(m.text) as { type: string }).type);
    expect(await uploadRecords()).toEqual(['AttachmentUploaded']);

    // Rebuilt from the streams, as after a restore: the forward still has its file.
    await stack.stop();
    await rebuildMessages(vars);
    stack = await startServices(vars);
    expect((await forwardNow())?.attachments.map((a) => a.id)).toEqual([fileId]);
    const got = await download();
    expect(got.status).toBe(200);
    expect(await got.text()).toBe('a photo of the cat');
    // A retention pass sweeps files no row names: this one is named.
    const pass = await runCleanup([], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
    expect(pass.exitCode).toBe(0);
    expect(existsSync(path.join(files, fileId.slice(-2), fileId))).toBe(true);

    // The forward's deletion lets go of the file: row, file and upload record go.
    expect((await http(stack, 'DELETE', `/api/v1/messages/${forward.body.id}`, { token: bob.accessToken })).status).toBe(204);
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.attachments WHERE id = $1', [fileId])) === 0 || undefined, 20_000, 'the row gone');
    await eventually(async () => (existsSync(path.join(files, fileId.slice(-2), fileId)) ? undefined : true), 20_000, 'the file gone');
    await eventually(async () => ((await uploadRecords()).includes('AttachmentUploaded') ? undefined : true), 20_000, 'the upload record gone');
  });

  it('DELETE /attachments/:id racing a send of the file: the projection keeps the row, the answer says so, and a rebuild agrees', async () => {
    const chat = (await http(stack, 'POST', '/api/v1/chats', { token: bob.accessToken, body: { type: 'direct', userId: cat.id } })).body.id;
    const form = new FormData();
    form.append('file', new Blob(['kept after all'], { type: 'text/plain' }), 'kept.txt');
    const fileId = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${bob.accessToken}` }, body: form })).json()) as { id: string }).id;
    await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.attachments WHERE id = $1', [fileId])) === 1 || undefined);
    // The attachments projection's deletion statement waits for this lock before it takes its
    // snapshot (a row lock would not do: the statement would then see the link only after deleting
    // the row); the send's link needs no lock on that table. So the deletion is decided on, and
    // the send lands before the projection applies it.
    const lock = await holdLock(env.databaseUrl, 'LOCK TABLE messages.file_deletions IN ACCESS EXCLUSIVE MODE');
    try {
      const deletion = http(stack, 'DELETE', `/api/v1/attachments/${fileId}`, { token: bob.accessToken });
      const subject = `${env.namespace}.attachment.${fileId}`;
      await eventually(async () => ((await storedMessages(nc, `${env.namespace}_chats`)).some((m) => m.subject === subject && m.text.includes('AttachmentDeleted')) ? true : undefined), 5_000, 'the deletion stored');
      const sent = await http(stack, 'POST', `/api/v1/chats/${chat}/messages`, { token: bob.accessToken, body: { clientMsgId: 'race', body: 'here it is', attachmentIds: [fileId] } });
      expect(sent.status).toBe(201);
      await eventually(async () => (await rows('SELECT count(*) AS n FROM messages.message_attachments WHERE attachment_id = $1', [fileId])) === 1 || undefined, 5_000, 'the send linked');
      await lock.release();
      expect((await deletion).status).toBe(409);
      const shown = async () => ((await http(stack, 'GET', `/api/v1/chats/${chat}/messages`, { token: cat.accessToken })).body.items as { id: string; attachments: { id: string }[] }[]).find((m) => m.id === sent.body.id);
      expect((await shown())?.attachments.map((a) => a.id)).toEqual([fileId]);
      // The unapplied deletion leaves the stream (a replay would apply it before the link); the record stays.
      await eventually(async () => {
        const types = (await storedMessages(nc, `${env.namespace}_chats`)).filter((m) => m.subject === subject).map((m) => (JSON.parse(m.text) as { type: string }).type);
        return types.length === 1 ? types : undefined;
      }, 10_000, 'the unapplied deletion gone from the stream');

      await stack.stop();
      await rebuildMessages(vars);
      stack = await startServices(vars);
      expect((await shown())?.attachments.map((a) => a.id)).toEqual([fileId]);
      const got = await fetch(`${stack.baseUrl}/api/v1/attachments/${fileId}`, { headers: { authorization: `Bearer ${cat.accessToken}` } });
      expect(got.status).toBe(200);
      expect(await got.text()).toBe('kept after all');
    } finally {
      await lock.end();
    }
  });
});
