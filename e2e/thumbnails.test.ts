import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { expectHeadLikeRefusedGet, rawHead } from './raw-head.js';
import { http, register, startStack, TestSocket, type Account, type Stack } from './stack.js';

const GHOST = '01900000-0000-7000-8000-000000000000';

/** A test picture of `width`x`height`: two colours, so a rotation or a wrong crop would show. */
function picture(width: number, height: number): ReturnType<typeof sharp> {
  const left = { input: { create: { width: Math.max(1, Math.floor(width / 2)), height, channels: 3 as const, background: '#c00' } }, left: 0, top: 0 };
  return sharp({ create: { width, height, channels: 3, background: '#00c' } }).composite([left]);
}

/** A PNG chunk: length, type, data, CRC-32 of type and data. */
function pngChunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(body));
  return Buffer.concat([length, body, crc]);
}

/**
 * A decompression bomb: a valid PNG header declaring 30000x30000 RGB pixels (2.7 GB decoded) and
 * a few hundred bytes of data. Decoding it would take gigabytes; it must be refused from the header.
 */
function pngBomb(): Buffer {
  const header = Buffer.alloc(13);
  header.writeUInt32BE(30_000, 0);
  header.writeUInt32BE(30_000, 4);
  header[8] = 8; // bits per sample
  header[9] = 2; // RGB
  const signature = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  return Buffer.concat([signature, pngChunk('IHDR', header), pngChunk('IDAT', zlib.deflateSync(Buffer.alloc(4096))), pngChunk('IEND', Buffer.alloc(0))]);
}

describe('image thumbnails (GET /api/v1/attachments/:id/thumbnail)', () => {
  let stack: Stack;
  let ann: Account;
  let bob: Account;
  let eve: Account;
  let chatId: string;

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'parley-thumbnails-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir });
    [ann, bob, eve] = [await register(stack, 'th_ann'), await register(stack, 'th_bob'), await register(stack, 'th_eve')];
    chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
  });
  afterAll(async () => stack?.stop());

  const upload = async (who: Account, bytes: Buffer, name: string, type = 'application/octet-stream') => {
    const form = new FormData();
    form.append('file', new Blob([bytes], { type }), name);
    const res = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${who.accessToken}` }, body: form });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; mime: string };
  };
  const thumbnail = (who: Account | null, id: string) =>
    fetch(`${stack.baseUrl}/api/v1/attachments/${id}/thumbnail`, { headers: who ? { authorization: `Bearer ${who.accessToken}` } : {} });
  /** A 200 answer's WebP, decoded: its size, and the metadata it carries. */
  const decoded = async (res: Response) => {
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get('content-type')).toBe('image/webp');
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('cache-control')).toBe('no-store');
    const bytes = Buffer.from(await res.arrayBuffer());
    return { bytes, meta: await sharp(bytes).metadata() };
  };
  const errorOf = async (res: Response) => ({ status: res.status, body: (await res.json()) as any });

  it('fits a large PNG and a large JPEG inside 320x320, keeping the aspect ratio, as WebP', async () => {
    const png = await upload(ann, await picture(1000, 500).png().toBuffer(), 'wide.png');
    const jpeg = await upload(ann, await picture(500, 900).jpeg().toBuffer(), 'tall.jpg');
    expect([png.mime, jpeg.mime]).toEqual(['image/png', 'image/jpeg']);
    const wide = await decoded(await thumbnail(ann, png.id));
    expect(wide.meta).toMatchObject({ format: 'webp', width: 320, height: 160 });
    const tall = await decoded(await thumbnail(ann, jpeg.id));
    expect(tall.meta).toMatchObject({ format: 'webp', height: 320 });
    expect(Math.abs(tall.meta.width! - (500 * 320) / 900)).toBeLessThanOrEqual(1);
    // Asked again: the same bytes (from the cache, after the same access check).
    expect((await decoded(await thumbnail(ann, png.id))).bytes.equals(wide.bytes)).toBe(true);
  });

  it('never enlarges a small image', async () => {
    const small = await upload(ann, await picture(100, 60).png().toBuffer(), 'small.png');
    expect((await decoded(await thumbnail(ann, small.id))).meta).toMatchObject({ width: 100, height: 60 });
  });

  it('applies EXIF orientation and strips the metadata', async () => {
    // Stored 600x300 landscape with orientation 6 ("rotate 90° clockwise to view"): a portrait photo.
    const photo = await picture(600, 300).jpeg().withMetadata({ orientation: 6 }).toBuffer();
    expect((await sharp(photo).metadata()).orientation).toBe(6);
    const up = await upload(ann, photo, 'phone.jpg');
    const { meta } = await decoded(await thumbnail(ann, up.id));
    expect(meta).toMatchObject({ width: 160, height: 320 });
    expect(meta.orientation).toBeUndefined();
    expect(meta.exif).toBeUndefined();
    expect(meta.icc).toBeUndefined();
  });

  it('takes the first frame of an animated GIF, and reads WebP', async () => {
    const red = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#f00' } }).png().toBuffer();
    const blue = await sharp({ create: { width: 400, height: 200, channels: 3, background: '#00f' } }).png().toBuffer();
    const gif = await upload(ann, await sharp([red, blue], { join: { animated: true } }).gif().toBuffer(), 'anim.gif');
    const webp = await upload(ann, await picture(640, 640).webp().toBuffer(), 'square.webp');
    expect([gif.mime, webp.mime]).toEqual(['image/gif', 'image/webp']);
    const first = await decoded(await thumbnail(ann, gif.id));
    expect(first.meta).toMatchObject({ width: 320, height: 160 });
    expect(first.meta.pages ?? 1).toBe(1);
    const { data } = await sharp(first.bytes).raw().toBuffer({ resolveWithObject: true });
    expect(data[0]).toBeGreaterThan(200); // red, the first frame
    expect(data[2]).toBeLessThan(50);
    expect((await decoded(await thumbnail(ann, webp.id))).meta).toMatchObject({ width: 320, height: 320 });
  });

  it('follows the download access rule: members once sent (at once, read-your-writes), 404 for anyone else', async () => {
    const up = await upload(ann, await picture(800, 800).png().toBuffer(), 'shared.png');
    // Not sent yet: only the uploader.
    expect((await decoded(await thumbnail(ann, up.id))).meta.width).toBe(320);
    const ghost = await errorOf(await thumbnail(bob, GHOST));
    expect(ghost).toEqual({ status: 404, body: { error: { code: 'not_found', message: expect.any(String) } } });
    expect(await errorOf(await thumbnail(bob, up.id))).toEqual(ghost);

    const socket = await TestSocket.open(stack.wsUrl, ann.accessToken);
    const bobSocket = await TestSocket.open(stack.wsUrl, bob.accessToken);
    await bobSocket.sync();
    socket.send({ op: 'send', chatId, clientMsgId: 'picture', body: 'look', attachmentIds: [up.id] });
    const live = await bobSocket.next((f) => f.type === 'message.created' && f.data.body === 'look');
    // Asked on the live event itself, before the projection may have applied it.
    expect((await decoded(await thumbnail(bob, live.data.attachments[0].id))).meta.width).toBe(320);
    // Eve is in no chat with it: the same 404 as an unknown id, cached thumbnail or not.
    expect(await errorOf(await thumbnail(eve, up.id))).toEqual(ghost);
    socket.close();
    bobSocket.close();

    expect((await thumbnail(null, up.id)).status).toBe(401);
    expect(await errorOf(await thumbnail(ann, 'not-an-id'))).toEqual({ status: 400, body: { error: { code: 'invalid_request', message: expect.any(String) } } });
  });

  it('answers HEAD like GET, without the image: 200 with its length to the uploader, 404 to anyone without access', async () => {
    // Before, HEAD went on to the messages service, which has no such route: 404 for everyone.
    const up = await upload(ann, await picture(600, 400).png().toBuffer(), 'head.png');
    const path = `/api/v1/attachments/${up.id}/thumbnail`;
    const head = await rawHead(stack.baseUrl, path, ann.accessToken);
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toBe('image/webp');
    expect(head.headers['x-content-type-options']).toBe('nosniff');
    expect(head.headers['cache-control']).toBe('no-store');
    expect(head.headers.connection).toBe('close');
    expect(head.after).toBe('');
    const { bytes } = await decoded(await thumbnail(ann, up.id));
    expect(head.headers['content-length']).toBe(String(bytes.length));
    // Eve is in no chat with it: the same 404 as GET, with the length of GET's body.
    await expectHeadLikeRefusedGet(stack.baseUrl, path, await thumbnail(eve, up.id), eve.accessToken);
  });

  it('answers 404 once the message or the upload is deleted', async () => {
    const sent = await upload(ann, await picture(700, 400).png().toBuffer(), 'gone.png');
    const message = await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: 'to-delete', body: 'soon gone', attachmentIds: [sent.id] } });
    expect(message.status).toBe(201);
    expect((await thumbnail(bob, sent.id)).status).toBe(200); // now cached
    expect((await http(stack, 'DELETE', `/api/v1/messages/${message.body.id}`, { token: ann.accessToken })).status).toBe(204);
    await eventually(async () => ((await thumbnail(ann, sent.id)).status === 404 ? true : undefined));
    expect(await errorOf(await thumbnail(bob, sent.id))).toEqual(await errorOf(await thumbnail(bob, GHOST)));

    const unsent = await upload(ann, await picture(700, 400).jpeg().toBuffer(), 'unsent.jpg');
    expect((await thumbnail(ann, unsent.id)).status).toBe(200);
    expect((await http(stack, 'DELETE', `/api/v1/attachments/${unsent.id}`, { token: ann.accessToken })).status).toBe(204);
    expect((await thumbnail(ann, unsent.id)).status).toBe(404);
  });

  it('has no thumbnail for a file that is not an image', async () => {
    const text = await upload(ann, Buffer.from('just some notes'), 'notes.txt', 'text/plain');
    expect(text.mime).toBe('text/plain');
    const answer = await errorOf(await thumbnail(ann, text.id));
    expect(answer).toEqual({ status: 404, body: { error: { code: 'not_found', message: expect.stringMatching(/thumbnail/i) } } });
  });

  it('refuses a decompression bomb from its header, quickly, and keeps serving', async () => {
    const bomb = await upload(ann, pngBomb(), 'bomb.png');
    expect(bomb.mime).toBe('image/png');
    const started = Date.now();
    const answer = await errorOf(await thumbnail(ann, bomb.id));
    expect(Date.now() - started).toBeLessThan(2_000);
    expect(answer).toEqual({ status: 422, body: { error: { code: 'unprocessable', message: expect.stringMatching(/pixels/) } } });
    // Again (the refusal is remembered), and the gateway still does its work.
    expect((await thumbnail(ann, bomb.id)).status).toBe(422);
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: ann.accessToken })).status).toBe(200);
    const fine = await upload(ann, await picture(400, 400).png().toBuffer(), 'after-bomb.png');
    expect((await decoded(await thumbnail(ann, fine.id))).meta.width).toBe(320);
  });

  it('answers 422 for a truncated image that still sniffs as PNG', async () => {
    const full = await sharp(Buffer.alloc(600 * 400 * 3, 0x5a).map((_, i) => (i * 7919) % 251), { raw: { width: 600, height: 400, channels: 3 } }).png().toBuffer();
    const broken = await upload(ann, full.subarray(0, Math.floor(full.length / 2)), 'broken.png');
    expect(broken.mime).toBe('image/png');
    expect(await errorOf(await thumbnail(ann, broken.id))).toEqual({ status: 422, body: { error: { code: 'unprocessable', message: expect.stringMatching(/decoded/) } } });
  });

  it('counts thumbnails made, served from the cache and refused', async () => {
    const text = await (await fetch(`http://127.0.0.1:${stack.metricsPorts.gateway}/metrics`)).text();
    const count = (outcome: string) => Number(new RegExp(`gateway_thumbnails_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)`).exec(text)?.[1] ?? 0);
    expect(count('made')).toBeGreaterThanOrEqual(8);
    expect(count('cached')).toBeGreaterThanOrEqual(1);
    expect(count('refused')).toBe(2);
  });
});

describe('thumbnails under load', () => {
  let stack: Stack;
  let ann: Account;

  beforeAll(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'parley-thumbnails-load-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir, THUMBNAIL_MAX_PIXELS: '1000000' });
    ann = await register(stack, 'th_load');
  });
  afterAll(async () => stack?.stop());

  it('makes a dozen asked at once, each right (queued behind two slots); THUMBNAIL_MAX_PIXELS is the limit', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) {
      const form = new FormData();
      form.append('file', new Blob([await picture(900 + i, 700).jpeg().toBuffer()]), `p${i}.jpg`);
      const res = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: form });
      ids.push(((await res.json()) as any).id);
    }
    const answers = await Promise.all(ids.map((id) => fetch(`${stack.baseUrl}/api/v1/attachments/${id}/thumbnail`, { headers: { authorization: `Bearer ${ann.accessToken}` } })));
    for (const res of answers) {
      expect(res.status).toBe(200);
      expect((await sharp(Buffer.from(await res.arrayBuffer())).metadata()).width).toBe(320);
    }
    // 1000x1001 is one pixel over the limit set here.
    const form = new FormData();
    form.append('file', new Blob([await picture(1000, 1001).png().toBuffer()]), 'over.png');
    const over = ((await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${ann.accessToken}` }, body: form })).json()) as any).id;
    const refused = await fetch(`${stack.baseUrl}/api/v1/attachments/${over}/thumbnail`, { headers: { authorization: `Bearer ${ann.accessToken}` } });
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as any).error.code).toBe('unprocessable');
  });
});
