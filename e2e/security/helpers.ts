import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { eventually } from '@parley/testing';
import { expect } from 'vitest';
import type { HttpAnswer, Stack } from '../stack.js';

/** api.md's error codes, plus the ones docs/api.md and docs/protocol.md add. */
export const ERROR_CODES = new Set([
  'invalid_request',
  'unauthorized',
  'invalid_credentials',
  'forbidden',
  'not_found',
  'conflict',
  'username_taken',
  'email_taken',
  'email_unverified',
  'payload_too_large',
  'unprocessable',
  'rate_limited',
  'unavailable',
  'invalid_json',
  'unknown_op',
]);

/** Asserts an answer is api.md's error envelope with this status (and code, if given). */
export function expectError(answer: Pick<HttpAnswer, 'status' | 'body'>, status: number, code?: string): void {
  expect(answer.status, JSON.stringify(answer.body)).toBe(status);
  expect(answer.body).toEqual({
    error: { code: code ?? expect.stringMatching(/^[a-z]+(_[a-z]+)*$/), message: expect.any(String), ...(answer.body?.error?.details ? { details: expect.anything() } : {}) },
  });
}

export function portOf(stack: Pick<Stack, 'baseUrl'>): number {
  return Number(new URL(stack.baseUrl).port);
}

export interface RawExchange {
  /** Milliseconds from connecting until the server closed the connection, or null if still open at the limit. */
  closedAfterMs: number | null;
  /** Everything the server wrote. */
  received: string;
  /** Bytes of `text` written before the close (or the limit). */
  sent: number;
}

/**
 * Writes `head` at once, then `trickle` one byte every `everyMs`, over a raw TCP connection: what a
 * slowloris client does. Resolves when the server closes the connection or after `limitMs`.
 */
export function trickle(port: number, head: string, trickleText: string, everyMs: number, limitMs: number): Promise<RawExchange> {
  const socket = net.connect(port, '127.0.0.1');
  const started = Date.now();
  let received = '';
  let sent = 0;
  socket.on('connect', () => {
    socket.write(head);
    sent += head.length;
  });
  const timer = setInterval(() => {
    if (sent - head.length < trickleText.length && !socket.destroyed) socket.write(trickleText[sent++ - head.length]!);
  }, everyMs);
  return new Promise((resolve) => {
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('error', () => {});
    const limit = setTimeout(() => finish(null), limitMs);
    socket.on('close', () => finish(Date.now() - started));
    function finish(closedAfterMs: number | null) {
      clearInterval(timer);
      clearTimeout(limit);
      socket.destroy();
      resolve({ closedAfterMs, received, sent });
    }
  });
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The reset token of the newest mail for `email` (quoted-printable decoded). */
export async function tokenFor(dir: string, email: string, seen: Set<string>): Promise<string> {
  return eventually(async () => {
    for (const file of (await readdir(dir)).sort()) {
      // Only finished mails: the mailer writes a temporary file and renames it to .eml.
      if (seen.has(file) || !file.endsWith('.eml')) continue;
      const text = (await readFile(path.join(dir, file), 'utf8')).replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
      if (!text.includes(email)) continue;
      const token = /reset-password#token=([A-Za-z0-9_-]{43})/.exec(text)?.[1];
      if (token) {
        seen.add(file);
        return token;
      }
    }
    return undefined;
  });
}
