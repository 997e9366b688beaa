import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { expectHeadLikeRefusedGet, rawHead } from './raw-head.js';
import { http, register, startStack, storedMessages, TestSocket, type Account, type Stack } from './stack.js';

const PNG = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 0x0d, 0x49, 0x48, 0x44, 0x52]), Buffer.alloc(2000, 7)]);

describe('attachments', () => {
  let stack: Stack;
  let dir: string;
  let ann: Account;
  let bob: Account;
  let eve: Account;
  let chatId: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'parley-attachments-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir, ATTACHMENT_MAX_BYTES: String(200 * 1024) });
    [ann, bob, eve] = [await register(stack, 'at_ann'), await register(stack, 'at_bob'), await register(stack, 'at_eve')];
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
  });
  afterAll(async () => stack?.stop());

  const upload = async (who: Account, bytes: Buffer, name: string, type = 'application/octet-stream') => {
    const form = new FormData();
    form.append('file', new Blob([bytes], { type }), name);
    const response = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${who.accessToken}` }, body: form });
    return { status: response.status, body: (await response.json()) as any };
  };
  const download = (who: Account, id: string) => fetch(`${stack.baseUrl}/api/v1/attachments/${id}`, { headers: { authorization: `Bearer ${who.accessToken}` } });

  it('stores an upload under a server-generated name with a sniffed type', async () => {
    const up = await upload(ann, PNG, '../../etc/passwd.txt', 'text/plain');
    expect(up.status).toBe(201);
    expect(up.body).toEqual({ id: expect.stringMatching(/^[0-9a-f-]{36}$/), name: 'passwd.txt', size: PNG.length, mime: 'image/png' });
    const files = readdirSync(dir, { recursive: true }).map(String);
    expect(files.some((f) => f.endsWith(up.body.id))).toBe(true);
    expect(files.some((f) => f.includes('passwd'))).toBe(false);
    const mine = await download(ann, up.body.id);
    expect(mine.status).toBe(200);
    expect(mine.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await mine.arrayBuffer()).equals(PNG)).toBe(true);
    // Not sent anywhere yet: only the uploader may fetch it.
    expect((await download(bob, up.body.id)).status).toBe(404);
  });

  it('refuses uploads over the limit, without a token, or without a file', async () => {
    const big = await upload(ann, Buffer.alloc(300 * 1024, 1), 'big.bin');
    expect(big.status).toBe(413);
    expect(big.body.error.code).toBe('payload_too_large');
    const anonymous = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', body: new FormData() });
    expect(anonymous.status).toBe(401);
    const empty = new FormData();
    empty.append('note', 'no file here');
    const none = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: empty });
    expect(none.status).toBe(400);
    const notMultipart = await http(stack, 'POST', '/api/v1/attachments', { token: ann.accessToken, body: { file: 'x' } });
    expect(notMultipart.status).toBe(400);
    // No partial files left behind.
    expect(readdirSync(dir, { recursive: true }).map(String).some((f) => f.endsWith('.partial'))).toBe(false);
  });

  it('sends attachments with a message; members can download them, others cannot; deleting the message deletes the file', async () => {
    const doc = await upload(ann, Buffer.from('%PDF-1.4\n' + 'x'.repeat(500)), 'report.pdf');
    const text = await upload(ann, Buffer.from('plain notes'), 'notes.txt', 'text/plain');
    expect(doc.body.mime).toBe('application/pdf');
    expect(text.body.mime).toBe('text/plain');
    const socket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    const bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken);
    await bobSocket.sync();
    socket.send({ op: 'send', chatId, clientMsgId: 'with-files', body: 'see attached', attachmentIds: [doc.body.id, text.body.id] });
    const ack = await socket.next((f) => f.op === 'ack');
    const live = await bobSocket.next((f) => f.type === 'message.created');
    expect(live.data.attachments).toEqual([doc.body, text.body]);
    const [message] = await eventually(async () => {
      const items = (await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: bob.accessToken })).body.items;
      return items.length > 0 ? items : undefined;
    });
    expect(message).toMatchObject({ id: ack.messageId, attachments: [doc.body, text.body] });
    const got = await download(bob, doc.body.id);
    expect(got.status).toBe(200);
    expect(got.headers.get('content-disposition')).toContain("filename*=UTF-8''report.pdf");
    expect((await download(eve, doc.body.id)).status).toBe(404);

    // Eve cannot attach a file she cannot see; Bob can forward one he can.
    const eveChat = (await http(stack, 'POST', '/api/v1/chats', { token: eve.accessToken, body: { type: 'group', title: 'eve', memberIds: [] } })).body.id;
    const steal = await http(stack, 'POST', `/api/v1/chats/${eveChat}/messages`, { token: eve.accessToken, body: { clientMsgId: 'steal', body: 'mine now', attachmentIds: [doc.body.id] } });
    expect(steal.status).toBe(400);

    expect((await http(stack, 'DELETE', `/api/v1/messages/${ack.messageId}`, { token: ann.accessToken })).status).toBe(204);
    await eventually(async () => ((await download(bob, doc.body.id)).status === 404 ? true : undefined));
    await eventually(async () => (readdirSync(dir, { recursive: true }).map(String).some((f) => f.endsWith(doc.body.id)) ? undefined : true));
    expect((await download(ann, doc.body.id)).status).toBe(404);
    // In the stream, the deletion tombstone replaced the upload record: the file's name, size and
    // type do not outlive it (issue 23, finding 11).
    const nc = await stack.env.connectNats();
    try {
      const onSubject = await eventually(async () => {
        const stored = (await storedMessages(nc, `${stack.env.namespace}_chats`)).filter((m) => m.subject === `${stack.env.namespace}.attachment.${doc.body.id}`);
        return stored.some((m) => m.text.includes('"AttachmentDeleted"')) ? stored : undefined;
      });
      expect(onSubject).toHaveLength(1);
      expect(onSubject[0]!.text).not.toContain('report');
    } finally {
      await nc.close();
    }
    socket.close();
    bobSocket.close();
  });

  it('lets a member download a file the moment its message reaches them (read-your-writes, issue 22)', async () => {
    // Before: the download asked the projection, which had not applied the message yet: 404 for a
    // few milliseconds after the live event. Each round downloads on the live event itself.
    const socket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    const bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken);
    await bobSocket.sync();
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const file = await upload(ann, Buffer.from(`fresh file ${i}`), `fresh-${i}.txt`, 'text/plain');
      socket.send({ op: 'send', chatId, clientMsgId: `fresh-${i}`, body: `just sent ${i}`, attachmentIds: [file.body.id] });
      const live = await bobSocket.next((f) => f.type === 'message.created' && f.data.body === `just sent ${i}`);
      const res = await download(bob, live.data.attachments[0].id);
      statuses.push(res.status);
      if (res.status === 200) expect(await res.text()).toBe(`fresh file ${i}`);
    }
    expect(statuses).toEqual(Array(8).fill(200));
    socket.close();
    bobSocket.close();
  });

  it('answers HEAD on a file like GET, without the bytes: 200 to the uploader, 404 to anyone without access', async () => {
    // Before, HEAD went on to the messages service, which has no such route: 404 for everyone.
    const up = await upload(ann, PNG, 'head.png');
    const path = `/api/v1/attachments/${up.body.id}`;
    const get = await download(ann, up.body.id);
    expect(get.status).toBe(200);
    const head = await rawHead(stack.baseUrl, path, ann.accessToken);
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('image/png');
    expect(head.headers['content-length']).toBe(String(PNG.length));
    expect(head.headers['content-disposition']).toBe(get.headers.get('content-disposition'));
    expect(head.headers['cache-control']).toBe('no-store');
    expect(head.headers.connection).toBe('close');
    expect(head.after).toBe('');
    // Not sent anywhere: Bob's GET and HEAD are the same 404, with the length of GET's body.
    await expectHeadLikeRefusedGet(stack.baseUrl, path, await download(bob, up.body.id), bob.accessToken);
    expect((await rawHead(stack.baseUrl, path)).status).toBe(401);
    // An empty file: 200 with a length of 0.
    const empty = await upload(ann, Buffer.alloc(0), 'empty-head.txt');
    const emptyHead = await rawHead(stack.baseUrl, `/api/v1/attachments/${empty.body.id}`, ann.accessToken);
    expect([emptyHead.status, emptyHead.headers['content-length'], emptyHead.after]).toEqual([200, '0', '']);
  });

  it('lets an edit blank the caption of a message with attachments, as a send may; not the body of one without', async () => {
    // Before, every blank edit was refused (edits checked the body as if no file were attached).
    const file = await upload(ann, Buffer.from('captioned file'), 'captioned.txt', 'text/plain');
    const send = (clientMsgId: string, body: string, attachmentIds: string[]) =>
      http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId, body, attachmentIds } });
    const captioned = await send('captioned', 'a caption', [file.body.id]);
    expect(captioned.status).toBe(201);
    const blanked = await http(stack, 'PATCH', `/api/v1/messages/${captioned.body.id}`, { token: ann.accessToken, body: { body: '' } });
    expect(blanked.status, JSON.stringify(blanked.body)).toBe(200);
    expect(blanked.body).toMatchObject({ id: captioned.body.id, body: '', attachments: [file.body], editedAt: expect.any(String) });

    const plain = await send('plain', 'just text', []);
    expect(plain.status).toBe(201);
    for (const body of ['', '   ']) {
      const refused = await http(stack, 'PATCH', `/api/v1/messages/${plain.body.id}`, { token: ann.accessToken, body: { body } });
      expect(refused.status).toBe(400);
      expect(refused.body.error.code).toBe('invalid_request');
    }
    const history = (await http(stack, 'GET', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken })).body.items as { id: string; body: string }[];
    expect(history.find((m) => m.id === plain.body.id)?.body).toBe('just text');
  });

  it('streams a large file back intact', async () => {
    const bytes = Buffer.alloc(190 * 1024);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 31) % 251;
    const up = await upload(ann, bytes, 'blob.bin');
    expect(up.status).toBe(201);
    const back = Buffer.from(await (await download(ann, up.body.id)).arrayBuffer());
    expect(back.equals(bytes)).toBe(true);
    expect(existsSync(dir)).toBe(true);
  });

  it('answers the download of an empty file, completely', async () => {
    const up = await upload(ann, Buffer.alloc(0), 'empty.txt');
    expect(up.status).toBe(201);
    expect(up.body.size).toBe(0);
    // Before, the answer never ended: no data to end it with.
    const whole = (async () => {
      const response = await download(ann, up.body.id);
      return { status: response.status, bytes: (await response.arrayBuffer()).byteLength };
    })();
    const ended = await Promise.race([whole, new Promise<null>((resolve) => setTimeout(() => resolve(null), 5_000))]);
    expect(ended).toEqual({ status: 200, bytes: 0 });
  });
});

describe('unreferenced uploads are swept after the grace period', () => {
  let stack: Stack;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'parley-sweep-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir, ATTACHMENT_GRACE_SECONDS: '2', ATTACHMENT_SWEEP_INTERVAL_SECONDS: '1' });
  });
  afterAll(async () => stack?.stop());

  it('deletes a file no message used, and keeps one that was sent', async () => {
    const [a, b] = [await register(stack, 'sw_a'), await register(stack, 'sw_b')];
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: a.accessToken, body: { type: 'direct', userId: b.id } })).body.id;
    const upload = async (name: string) => {
      const form = new FormData();
      form.append('file', new Blob([Buffer.from(`content of ${name}`)], { type: 'text/plain' }), name);
      return ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${a.accessToken}` }, body: form })).json()) as any).id as string;
    };
    const unused = await upload('unused.txt');
    const used = await upload('used.txt');
    const sent = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: a.accessToken, body: { clientMsgId: 'u', body: 'file', attachmentIds: [used] } });
    expect(sent.status).toBe(201);
    const onDisk = (id: string) => readdirSync(dir, { recursive: true }).map(String).some((f) => f.endsWith(id));
    await eventually(async () => (onDisk(unused) ? undefined : true), 10_000, 'the unused upload to be swept');
    const gone = await fetch(`${stack.baseUrl}/api/v1/attachments/${unused}`, { headers: { authorization: `Bearer ${a.accessToken}` } });
    expect(gone.status).toBe(404);
    expect(onDisk(used)).toBe(true);
    const kept = await fetch(`${stack.baseUrl}/api/v1/attachments/${used}`, { headers: { authorization: `Bearer ${b.accessToken}` } });
    expect(kept.status).toBe(200);
    // A swept id can no longer be attached.
    const late = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: a.accessToken, body: { clientMsgId: 'late', body: 'too late', attachmentIds: [unused] } });
    expect(late.status).toBe(400);
  });
});
