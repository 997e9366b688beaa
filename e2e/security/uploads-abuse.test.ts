import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { register, startStack, type Account, type Stack } from '../stack.js';
import { portOf } from './helpers.js';

const PNG = Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082', 'hex');

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) if (entry.isFile()) out.push(path.join(entry.parentPath, entry.name));
  return out;
}

/**
 * Upload abuse (issue 10), beyond attachments.test.ts (one traversal name, a sniffed PNG, the size
 * limit, missing token or file): many traversal and header-injection names, declared types that lie
 * in both directions, and uploads the client abandons mid-body. There is no per-user storage quota
 * in api.md; the size limit and the sweep of unused uploads bound what one user can leave behind
 * (docs/security.md).
 */
describe('upload abuse', () => {
  let stack: Stack;
  let dir: string;
  let alice: Account;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'parley-upload-abuse-'));
    stack = await startStack({ ATTACHMENTS_DIR: dir, ATTACHMENT_MAX_BYTES: String(64 * 1024), ATTACHMENT_UPLOADS_PER_MINUTE: '1000' });
    alice = await register(stack, 'upa_alice');
  });
  afterAll(async () => {
    await stack?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function upload(content: Buffer, name: string, type: string) {
    const form = new FormData();
    form.append('file', new Blob([content], { type }), name);
    const res = await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${alice.accessToken}` }, body: form });
    return { status: res.status, body: (await res.json()) as any };
  }
  const download = (id: string) => fetch(`${stack.baseUrl}/api/v1/attachments/${id}`, { headers: { authorization: `Bearer ${alice.accessToken}` } });

  it('stores files under server ids whatever the name, and serves the name back harmlessly', async () => {
    const names: [string, string][] = [
      ['../../etc/passwd', 'passwd'],
      ['..\\..\\windows\\win.ini', 'win.ini'],
      ['/etc/shadow', 'shadow'],
      ['....//....//etc/hosts', 'hosts'],
      ['..%2F..%2Fetc%2Fpasswd', '..%2F..%2Fetc%2Fpasswd'],
      // FormData percent-encodes CR and LF in a file name (a raw one would end the part's header).
      ['evil\r\nSet-Cookie: session=stolen.txt', 'evil%0D%0ASet-Cookie: session=stolen.txt'],
      ['"quoted"; filename=other.exe', '%22quoted%22; filename=other.exe'],
      ['..', 'file'],
      // Format characters (issue 23, finding 7): a bidi override that shows "invoice-exe.pdf", isolates, zero-width.
      ['invoice-\u202Efdp.exe', 'invoice-fdp.exe'],
      ['\u2067report\u2069\u200B.txt\uFEFF', 'report.txt'],
      // Non-ASCII names arrive as UTF-8 and stay as typed.
      ['отчёт за март.pdf', 'отчёт за март.pdf'],
      [`${'a'.repeat(300)}.txt`, 'a'.repeat(255)],
      // At most 255 UTF-16 units, never half an emoji at the edge (its first half was acknowledged).
      [`${'b'.repeat(254)}😀😀.txt`, 'b'.repeat(254)],
      [`${'b'.repeat(253)}😀😀.txt`, `${'b'.repeat(253)}😀`],
    ];
    for (const [name, expected] of names) {
      const up = await upload(Buffer.from('plain text'), name, 'text/plain');
      expect(up.status, name).toBe(201);
      expect(up.body.name, `${name} -> ${up.body.name}`).toBe(expected);
      const res = await download(up.body.id);
      expect(res.headers.get('set-cookie'), name).toBeNull();
      expect(res.headers.get('content-disposition')).toBe(`attachment; filename*=UTF-8''${encodeURIComponent(expected)}`);
    }
    // Raw control characters in the part's header are malformed multipart (busboy refuses them).
    const control = await upload(Buffer.from('plain text'), 'bell\u0007escape\u001b[31m.txt', 'text/plain');
    expect(control).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    // A part with an empty file name is a form field, not a file: "no file in the upload".
    expect(await upload(Buffer.from('plain text'), '', 'text/plain')).toMatchObject({ status: 400, body: { error: { code: 'invalid_request' } } });
    // Every file on disk is named by an id, inside the store; nothing was written anywhere else.
    const files = await listFiles(dir);
    expect(files).toHaveLength(names.length);
    for (const file of files) expect(path.relative(dir, file)).toMatch(/^[0-9a-f]{2}\/[0-9a-f-]{36}$/);
  });

  it('trusts the content, not the declared type, in both directions', async () => {
    const html = Buffer.from('<html><script>alert(document.cookie)</script></html>');
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>');
    const cases: [Buffer, string, string][] = [
      [PNG, 'text/plain', 'image/png'],
      [html, 'image/png', 'application/octet-stream'],
      [html, 'text/html', 'application/octet-stream'],
      [svg, 'image/svg+xml', 'application/octet-stream'],
      [Buffer.from('%PDF-1.4 but not really'), 'application/pdf', 'application/pdf'],
      [Buffer.from('MZ not an exe'), 'image/jpeg', 'application/x-msdownload'],
    ];
    for (const [content, declared, stored] of cases) {
      const up = await upload(content, 'x', declared);
      expect(up.body.mime, `${declared}: ${content.subarray(0, 12).toString()}`).toBe(stored);
      const res = await download(up.body.id);
      expect(res.headers.get('content-type')).toBe(stored);
      // Browsers neither guess another type nor render it inline.
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('content-disposition')).toMatch(/^attachment;/);
    }
  });

  it('leaves no open file and no partial file behind when clients abandon uploads mid-body', async () => {
    const openFiles = () => readdirSync('/proc/self/fd').length;
    const before = openFiles();
    const boundary = 'abandoned';
    const part = `--${boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.bin"\r\nContent-Type: application/octet-stream\r\n\r\n${'z'.repeat(4096)}`;
    for (let i = 0; i < 20; i++) {
      const socket = net.connect(portOf(stack), '127.0.0.1');
      socket.on('error', () => {});
      socket.write(`POST /api/v1/attachments HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${alice.accessToken}\r\nContent-Type: multipart/form-data; boundary=${boundary}\r\nContent-Length: 60000\r\n\r\n${part}`);
      await new Promise((r) => setTimeout(r, 100));
      socket.destroy();
    }
    // The gateway runs in this process, so its descriptors are ours to count.
    await eventually(async () => (openFiles() <= before + 2 ? true : undefined), 5_000, 'descriptors released');
    await eventually(async () => ((await listFiles(dir)).some((f) => f.endsWith('.partial')) ? undefined : true), 5_000, 'partial files removed');
    // And the next upload still works.
    expect((await upload(PNG, 'after.png', 'image/png')).status).toBe(201);
  });
});
