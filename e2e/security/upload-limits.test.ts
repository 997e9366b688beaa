import httpClient from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { http, register, startStack, storedMessages, type Account, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

const KIB = 1024;

/** A multipart upload's body written by hand (for node:http, which streams it as the test says). */
function multipartBody(boundary: string, filename: string, bytes: number, fill: number): Buffer {
  return Buffer.concat([
    Buffer.from(`--${boundary}\r\ncontent-disposition: form-data; name="file"; filename="${filename}"\r\ncontent-type: application/octet-stream\r\n\r\n`),
    Buffer.alloc(bytes, fill),
    Buffer.from(`\r\n--${boundary}--\r\n`),
  ]);
}

/**
 * An upload started over node:http with the first KiB of `body` written and the rest held back
 * (`req.end(rest)` sends it); `answered` resolves with the status. `length` false sends it chunked.
 */
function startUpload(baseUrl: string, token: string, boundary: string, body: Buffer, length: boolean): { req: httpClient.ClientRequest; answered: Promise<number> } {
  const url = new URL(`${baseUrl}/api/v1/attachments`);
  let req!: httpClient.ClientRequest;
  const answered = new Promise<number>((resolve) => {
    req = httpClient.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent: false,
        headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${boundary}`, ...(length ? { 'content-length': body.length } : { 'transfer-encoding': 'chunked' }) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on('error', () => {}); // a refused one's connection may close under its body
  });
  req.write(body.subarray(0, 1024));
  return { req, answered };
}

/**
 * Issue 23, finding 7: uploads had no per-user rate or quota and no delete route (20 MiB every half
 * second per token, kept a day). Now: ATTACHMENT_UPLOADS_PER_MINUTE per user, ATTACHMENT_PENDING_BYTES
 * of uploads no message carries yet, and DELETE /api/v1/attachments/:id for an unsent upload.
 */
describe('upload rate, quota and delete', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-upload-limits-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir, ATTACHMENT_MAX_BYTES: String(64 * KIB), ATTACHMENT_UPLOADS_PER_MINUTE: '5', ATTACHMENT_PENDING_BYTES: String(100 * KIB) });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });
  async function upload(who: Account, bytes: number, name = 'file.bin') {
    const form = new FormData();
    form.append('file', new Blob([Buffer.alloc(bytes, 7)], { type: 'application/octet-stream' }), name);
    const res = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${who.accessToken}` }, body: form });
    return { status: res.status, body: (await res.json()) as any, retryAfter: res.headers.get('retry-after') };
  }

  it('refuses the sixth upload of a minute with 429 and the seconds to wait in Retry-After', async () => {
    const user = await register(stack);
    for (let i = 0; i < 5; i++) expect((await upload(user, 100)).status).toBe(201);
    const refused = await upload(user, 100);
    expectError(refused, 429, 'rate_limited');
    // The oldest of the five leaves the minute within 60 s; the message says the same number.
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(Number(refused.retryAfter)).toBeLessThanOrEqual(60);
    expect(refused.body.error.message).toContain(`try again in ${refused.retryAfter} s`);
  });

  it('counts uploads still streaming against the quota, so parallel ones cannot pass it together', async () => {
    // The quota read only uploads already stored, which happens once a body is in: thirty 25 MiB
    // uploads started together all saw the same room and all went in.
    const user = await register(stack);
    const boundary = 'parleyQuotaBoundary';
    const body = multipartBody(boundary, 'part.bin', 45 * KIB, 3);
    const start = () => startUpload(stack.baseUrl, user.accessToken, boundary, body, true);
    // Three of 45 KiB against 100 KiB, their bodies held back: two fit, the third is refused
    // while the others are still streaming (before, nothing was answered until a body was in).
    const uploads = [start(), start(), start()];
    const refused = await Promise.race(uploads.map((u, i) => u.answered.then((status) => ({ i, status }))));
    expect(refused.status).toBe(429);
    const others = uploads.filter((_, i) => i !== refused.i);
    for (const u of others) u.req.end(body.subarray(1024));
    expect(await Promise.all(others.map((u) => u.answered))).toEqual([201, 201]);
    uploads[refused.i]!.req.destroy();
  }, 15_000);

  it('counts a chunked upload (no Content-Length) streaming against the quota at the most a file may be', async () => {
    // It reserved nothing: any number of parallel chunked uploads passed the quota together.
    const user = await register(stack);
    const boundary = 'parleyChunkedBoundary';
    const body = multipartBody(boundary, 'part.bin', 20 * KIB, 5);
    const start = () => startUpload(stack.baseUrl, user.accessToken, boundary, body, false);
    // Each reserves 64 KiB (ATTACHMENT_MAX_BYTES) of the 100 KiB: the second is refused while the first streams.
    const uploads = [start(), start()];
    const refused = await Promise.race(uploads.map((u, i) => u.answered.then((status) => ({ i, status }))));
    expect(refused.status).toBe(429);
    const other = uploads[1 - refused.i]!;
    other.req.end(body.subarray(1024));
    expect(await other.answered).toBe(201);
    uploads[refused.i]!.req.destroy();
  }, 15_000);

  it('holds unsent uploads to the quota; a delete or a send frees their room', async () => {
    const user = await register(stack);
    const other = await register(stack);
    const first = await upload(user, 45 * KIB, 'first.bin');
    const second = await upload(user, 45 * KIB, 'second.bin');
    expect([first.status, second.status]).toEqual([201, 201]);
    const over = await upload(user, 45 * KIB);
    expectError(over, 429, 'rate_limited');
    // Waiting frees nothing before the uploads expire (a day): no Retry-After.
    expect(over.retryAfter).toBeNull();

    // Not someone else's to delete, and it answers as if it did not exist.
    expectError(await http(stack, 'DELETE', `/api/v1/attachments/${first.body.id}`, { token: other.accessToken }), 404, 'not_found');
    expect((await http(stack, 'DELETE', `/api/v1/attachments/${first.body.id}`, { token: user.accessToken })).status).toBe(204);
    expect((await fetch(`${stack.baseUrl}/api/v1/attachments/${first.body.id}`, { headers: { authorization: `Bearer ${user.accessToken}` } })).status).toBe(404);
    const nc = await stack.env.connectNats();
    try {
      const left = (await storedMessages(nc, `${stack.env.namespace}_chats`)).filter((m) => m.subject === `${stack.env.namespace}.attachment.${first.body.id}`);
      expect(left).toHaveLength(1);
      expect(left[0]!.text).toContain('"AttachmentDeleted"');
      expect(left[0]!.text).not.toContain('first.bin');
    } finally {
      await nc.close();
    }
    expect((await upload(user, 45 * KIB, 'third.bin')).status).toBe(201);

    // A sent file is the message's: it no longer counts, and only deleting the message removes it.
    const chat = (await http(stack, 'POST', '/api/v1/chats', { token: user.accessToken, body: { type: 'group', title: 'files', memberIds: [other.id] } })).body.id;
    const sent = await http(stack, 'POST', `/api/v1/chats/${chat}/messages`, { token: user.accessToken, body: { clientMsgId: 'with-file', body: 'here', attachmentIds: [second.body.id] } });
    expect(sent.status).toBe(201);
    expectError(await http(stack, 'DELETE', `/api/v1/attachments/${second.body.id}`, { token: user.accessToken }), 409, 'conflict');
    // Once the message is projected, the quota has room again (the fifth upload of this minute).
    await eventually(async () => {
      const items = (await http(stack, 'GET', `/api/v1/chats/${chat}/messages`, { token: user.accessToken })).body.items;
      return items.length === 1 ? true : undefined;
    });
    expect((await upload(user, 45 * KIB, 'fourth.bin')).status).toBe(201);
  });
});

/**
 * Issue 23, finding 7 (the rest): on one keep-alive connection, every third 600 KiB upload stalled
 * 10–12 s and was reset. The gateway paused the socket when its buffer toward busboy was full and
 * resumed it on 'drain'; when that happened on the body's last chunk, the stream was ended at once
 * and Node never emits 'drain' after end(): the connection stayed paused, and the next request on
 * it waited for uWebSockets.js's idle timeout.
 */
describe('uploads on one keep-alive connection', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-upload-keepalive-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir, ATTACHMENT_UPLOADS_PER_MINUTE: '100' });
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('answers eight 600 KiB uploads in a row on the same connection, none stalled', async () => {
    const user = await register(stack);
    const agent = new httpClient.Agent({ keepAlive: true, maxSockets: 1 });
    const boundary = 'parleyKeepAliveBoundary';
    const body = multipartBody(boundary, 'big.bin', 600 * KIB, 9);
    const url = new URL(`${stack.baseUrl}/api/v1/attachments`);
    const upload = () =>
      new Promise<{ status: number; ms: number; reused: boolean }>((resolve, reject) => {
        const started = Date.now();
        const req = httpClient.request(
          { host: url.hostname, port: url.port, path: url.pathname, method: 'POST', agent, headers: { authorization: `Bearer ${user.accessToken}`, 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } },
          (res) => {
            res.resume();
            res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: Date.now() - started, reused: req.reusedSocket }));
          },
        );
        req.setTimeout(8_000, () => req.destroy(new Error('upload stalled for 8 s')));
        req.on('error', reject);
        req.end(body);
      });
    try {
      const answers = [];
      for (let i = 0; i < 8; i++) answers.push(await upload());
      expect(answers.map((a) => a.status)).toEqual(Array(8).fill(201));
      // The same connection throughout: the point of the test.
      expect(answers.slice(1).every((a) => a.reused)).toBe(true);
    } finally {
      agent.destroy();
    }
  }, 90_000);
});
