import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestEnv, eventually, type TestEnv } from '@parley/testing';
import { runCleanup } from '../services/retention/src/cli.js';
import { rebuildMessages } from '../services/messages/src/rebuild.js';
import { http, register, startServices, type Account, type Services } from './stack.js';

const DAY_MS = 86_400_000;

/**
 * A file sent again after the message it first came with (api.md lets a sender attach any file
 * they uploaded, at any time): a retention pass that expires the first message must keep the
 * file's upload record, which the later message still needs. It dropped it, and the row outlived
 * it only until a rebuild of the messages projection, which lost the file from the later message;
 * the pass after that deleted the file from disk.
 */
describe('retention: a file sent again after its first message expires stays with the later one', () => {
  let env: TestEnv;
  let vars: Record<string, string>;
  let stack: Services;
  let db: pg.Client;
  let files: string;
  let ann: Account;
  let bob: Account;

  beforeAll(async () => {
    files = mkdtempSync(path.join(tmpdir(), 'parley-retention-resend-'));
    env = await createTestEnv();
    vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000', ATTACHMENTS_DIR: files, MAIL_DIR: mkdtempSync(path.join(tmpdir(), 'parley-resend-mail-')), MESSAGE_RETENTION_DAYS: '30' };
    stack = await startServices(vars);
    db = new pg.Client({ connectionString: env.databaseUrl });
    await db.connect();
    [ann, bob] = [await register(stack), await register(stack)];
  });
  afterAll(async () => {
    await db?.end();
    await stack?.stop().catch(() => {});
    await env?.cleanup();
  });

  it('keeps the upload record, the row and the file of a file a fresh message carries again', async () => {
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const form = new FormData();
    form.append('file', new Blob(['sent twice'], { type: 'text/plain' }), 'twice.txt');
    const fileId = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: form })).json()) as { id: string }).id;
    const send = async (clientMsgId: string, body: string) => (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body, attachmentIds: [fileId] } })).body as { id: string };
    await send('first', 'the first time');
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();
    await new Promise((r) => setTimeout(r, 50));
    const again = await send('again', 'and again');
    const now = new Date(cutoff.getTime() + 30 * DAY_MS).toISOString();
    const cleanup = async () => {
      const pass = await runCleanup(['--now', now], { ...vars, RETENTION_ORPHAN_FILE_GRACE_SECONDS: '0' }, () => {});
      expect(pass.exitCode).toBe(0);
      return pass;
    };
    expect((await cleanup()).report?.rows.messages).toBe(1);

    // The projection is rebuilt from the streams, as after a restore or an upgrade that asks for it.
    await stack.stop();
    await rebuildMessages(vars);
    stack = await startServices(vars);
    const later = async () => ((await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: bob.accessToken })).body.items as { id: string; attachments: { id: string }[] }[]).find((m) => m.id === again.id);
    expect((await later())?.attachments.map((a) => a.id)).toEqual([fileId]);
    // And the next pass leaves the file on disk (it sweeps files no row names).
    await cleanup();
    await eventually(async () => ((await later())?.attachments.length === 1 ? true : undefined));
    const download = await fetch(`${stack.baseUrl}/api/v1/attachments/${fileId}`, { headers: { authorization: `Bearer ${bob.accessToken}` } });
    expect(download.status).toBe(200);
    expect(await download.text()).toBe('sent twice');
    expect(existsSync(path.join(files, fileId.slice(-2), fileId))).toBe(true);
  });
});
