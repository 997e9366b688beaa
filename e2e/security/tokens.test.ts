import { createHmac } from 'node:crypto';
import { SignJWT, decodeJwt } from 'jose';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { http, register, startStack, TestSocket, type Account, type Stack } from '../stack.js';
import { expectError } from './helpers.js';

const b64 = (value: unknown) => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** Signs header.payload with HMAC by hand, so the header can say anything (alg confusion). */
function hmacToken(header: object, payload: object, key: string, hash = 'sha256'): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac(hash, key).update(input).digest('base64url')}`;
}

/**
 * Forged access tokens (issue 10): each is refused alike on an HTTP route, at the WebSocket
 * upgrade (401 before any socket exists) and in an `auth` frame (close 4401), while the genuine
 * token works. The gateway verifies HS256 only, with issuer `parley` and audience `parley-api`.
 */
describe('token forgery', () => {
  let stack: Stack;
  let alice: Account;
  let bob: Account;
  let secret: string;
  let claims: { sub: string; sid: string; iat: number; exp: number };

  beforeAll(async () => {
    stack = await startStack();
    [alice, bob] = [await register(stack, 'tok_alice'), await register(stack, 'tok_bob')];
    secret = stack.vars.JWT_SECRET!;
    claims = decodeJwt(alice.accessToken) as typeof claims;
  });
  afterAll(async () => stack?.stop());

  const now = () => Math.floor(Date.now() / 1000);
  const sign = (payload: Record<string, unknown>, key = secret, alg = 'HS256') =>
    new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT' }).sign(new TextEncoder().encode(key));
  const valid = () => ({ sub: claims.sub, sid: claims.sid, iss: 'parley', aud: 'parley-api', iat: now(), exp: now() + 600 });

  async function forgeries(): Promise<[string, string][]> {
    const [, payload, signature] = alice.accessToken.split('.');
    return [
      ['alg none, no signature', `${b64({ alg: 'none', typ: 'JWT' })}.${b64(valid())}.`],
      ['alg none, the real signature kept', `${b64({ alg: 'none', typ: 'JWT' })}.${payload}.${signature}`],
      ['alg "None" (case games)', `${b64({ alg: 'None', typ: 'JWT' })}.${b64(valid())}.`],
      ['HS256 with the wrong key', await sign(valid(), 'not-the-server-secret-but-long-enough-32b')],
      ['HS512 with the right key (algorithm confusion)', hmacToken({ alg: 'HS512', typ: 'JWT' }, valid(), secret, 'sha512')],
      ['expired a minute ago', await sign({ ...valid(), iat: now() - 1000, exp: now() - 60 })],
      ['wrong audience', await sign({ ...valid(), aud: 'some-other-api' })],
      ['no audience', await sign({ sub: claims.sub, sid: claims.sid, iss: 'parley', iat: now(), exp: now() + 600 })],
      ['wrong issuer', await sign({ ...valid(), iss: 'evil' })],
      ['no session id', await sign({ sub: claims.sub, iss: 'parley', aud: 'parley-api', iat: now(), exp: now() + 600 })],
      ['numeric subject', await sign({ ...valid(), sub: 42 })],
      ["payload swapped to bob's id, alice's signature kept", `${alice.accessToken.split('.')[0]}.${b64({ ...claims, sub: bob.id })}.${signature}`],
      ['signature stripped', `${alice.accessToken.split('.').slice(0, 2).join('.')}.`],
      ['garbage', 'not.a.jwt'],
      ['oversize (5 KiB)', `${alice.accessToken}${'A'.repeat(5000)}`],
    ];
  }

  it('refuses every forgery on HTTP with 401 unauthorized, and accepts the genuine token', async () => {
    expect((await http(stack, 'GET', '/api/v1/users/me', { token: alice.accessToken })).status).toBe(200);
    for (const [name, token] of await forgeries()) {
      const answer = await http(stack, 'GET', '/api/v1/users/me', { token });
      expect(answer.status, name).toBe(401);
      expectError(answer, 401, 'unauthorized');
      // A write route too: nothing is created with a forged identity.
      const chat = await http(stack, 'POST', '/api/v1/chats', { token, body: { type: 'direct', userId: bob.id } });
      expect(chat.status, name).toBe(401);
    }
    expect((await http(stack, 'GET', '/api/v1/chats', { token: bob.accessToken })).body.items).toEqual([]);
  });

  it('closes a socket with 4401 when its access token expires, unless a newer token of the same session renews it', async () => {
    // A genuine token of Alice's session that expires in 4 s (whole seconds: 3-4 s of life).
    const exp = now() + 4;
    const shortLived = () => sign({ ...valid(), exp });
    const expiring = await TestSocket.open(stack.wsUrl, await shortLived());
    // Before, it stayed open (and sending) as Alice for as long as the session lived.
    expect((await expiring.waitClosed(8_000)).code).toBe(4401);
    // Closed at the expiry, not before it.
    expect(Date.now()).toBeGreaterThanOrEqual(exp * 1000 - 50);

    const renewedExp = now() + 4;
    const renewed = await TestSocket.open(stack.wsUrl, await sign({ ...valid(), exp: renewedExp }));
    renewed.send({ op: 'auth', token: await sign(valid()) });
    expect(await renewed.next((f) => f.op === 'authenticated')).toEqual({ op: 'authenticated', userId: alice.id });
    // Past the first token's expiry, it still answers.
    while (Date.now() < renewedExp * 1000 + 1_000) await new Promise((r) => setTimeout(r, 250));
    await renewed.sync();
    expect(renewed.closed).toBeNull();
    // Another session's token renews nothing.
    renewed.send({ op: 'auth', token: bob.accessToken });
    expect(await renewed.next((f) => f.op === 'error')).toMatchObject({ code: 'invalid_request' });
    renewed.close();
  });

  it('refuses every forgery at the WebSocket upgrade (401) and in an auth frame (close 4401)', async () => {
    for (const [name, token] of await forgeries()) {
      const status = await new Promise<number>((resolve, reject) => {
        const ws = new WebSocket(`${stack.wsUrl}?token=${encodeURIComponent(token)}`);
        ws.once('unexpected-response', (_req, res) => (resolve(res.statusCode ?? 0), ws.terminate()));
        ws.once('open', () => (ws.close(), reject(new Error(`${name}: upgrade accepted`))));
        ws.once('error', () => {});
      });
      expect(status, name).toBe(401);

      const socket = await TestSocket.open(stack.wsUrl);
      socket.send({ op: 'auth', token });
      if (token.length > 4096) {
        // Not even a well-formed auth frame (token over 4096 characters): an error, still unauthenticated.
        expect(await socket.next((f) => f.op === 'error'), name).toMatchObject({ code: 'unauthorized' });
        socket.send({ op: 'typing', chatId: '01900000-0000-7000-8000-000000000000' });
        expect(await socket.next((f) => f.op === 'error'), name).toMatchObject({ code: 'unauthorized' });
        socket.close();
      } else {
        expect((await socket.waitClosed()).code, name).toBe(4401);
      }
      expect(socket.frames.filter((f) => f.op === 'authenticated'), name).toEqual([]);
    }
    const genuine = await TestSocket.open(stack.wsUrl);
    genuine.send({ op: 'auth', token: alice.accessToken });
    expect(await genuine.next((f) => f.op === 'authenticated')).toEqual({ op: 'authenticated', userId: alice.id });
    genuine.close();
  });
});
