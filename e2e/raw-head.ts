import net from 'node:net';
import { expect } from 'vitest';

export interface RawHead {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  /** Whatever came after the headers: a HEAD answer must have nothing there. */
  after: string;
}

/**
 * A HEAD request on a raw socket: a client library would hide a body sent after HEAD's headers.
 * Once the headers are in, we close our side; the server then closes its own, after everything it
 * sent for the HEAD: the close is the signal that nothing more is coming.
 */
export async function rawHead(baseUrl: string, path: string, token?: string): Promise<RawHead> {
  const url = new URL(baseUrl);
  const authorization = token ? `Authorization: Bearer ${token}\r\n` : '';
  const raw = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname, () => socket.write(`HEAD ${path} HTTP/1.1\r\nHost: ${url.host}\r\n${authorization}\r\n`));
    let text = '';
    socket.on('data', (c: Buffer) => {
      text += c.toString('latin1');
      if (text.includes('\r\n\r\n')) socket.end();
    });
    socket.on('close', () => resolve(text));
    socket.on('error', reject);
  });
  const [head = '', ...rest] = raw.split('\r\n\r\n');
  const [statusLine = '', ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines) {
    const colon = line.indexOf(':');
    if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, after: rest.join('\r\n\r\n') };
}

/**
 * A HEAD by someone without access must answer what their GET answered (the same status, and the
 * length of GET's body), so that HEAD tells an outsider no more than GET does.
 */
export async function expectHeadLikeRefusedGet(baseUrl: string, path: string, refused: Response, token: string): Promise<void> {
  expect(refused.status).toBe(404);
  const refusedBody = await refused.text();
  const head = await rawHead(baseUrl, path, token);
  expect(head.status).toBe(404);
  expect(head.headers['content-length']).toBe(String(Buffer.byteLength(refusedBody)));
  expect(head.after).toBe('');
}
