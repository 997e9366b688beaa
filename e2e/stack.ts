import { spawn, type ChildProcess } from 'node:child_process';
import { readdir, readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type { Redis } from 'ioredis';
import { readStream } from '@parley/bus';
import { cacheKeyFrom, openSealed } from '@parley/cache';
import { DEV_CACHE_KEY } from '@parley/config';
import { createTestEnv, eventually, freePort, type TestEnv } from '@parley/testing';
import { startUsersService } from '../services/users/src/service.js';
import { startMessagesService } from '../services/messages/src/service.js';
import { startGatewayService } from '../services/gateway/src/service.js';

/**
 * The whole system in this test process, on the real servers, in its own database, namespace and
 * Redis prefix, listening on free ports. Tests talk to it the way clients do: HTTP and WebSocket.
 */
export interface Stack {
  env: TestEnv;
  vars: Record<string, string>;
  baseUrl: string;
  wsUrl: string;
  /** Each service's ops port (/healthz, /readyz, /metrics). */
  metricsPorts: { gateway: number; users: number; messages: number };
  stop(): Promise<void>;
}

export { freePort };

/**
 * One more gateway, as its own compiled process (`services/gateway/dist/main.js`) on `stack`'s
 * servers, with `vars` over the stack's: what a test needs that kills one (-9) or cuts it off.
 * Resolves once it answers HTTP; the caller kills `child` when done.
 */
export async function startGatewayProcess(stack: Pick<Stack, 'vars'>, vars: Record<string, string> = {}): Promise<{ child: ChildProcess; wsUrl: string; metricsPort: number }> {
  const port = await freePort();
  const metricsPort = await freePort();
  const main = path.resolve(import.meta.dirname, '..', 'services/gateway/dist/main.js');
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, ...stack.vars, PORT: String(port), METRICS_PORT: String(metricsPort), ...vars },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    await eventually(async () => ((await fetch(`http://127.0.0.1:${port}/api/v1/chats`).catch(() => null))?.status === 401 ? true : undefined), 30_000, 'the gateway process up');
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
  return { child, wsUrl: `ws://127.0.0.1:${port}/ws`, metricsPort };
}

/** A gateway's `active_users` gauge, read from its ops port. */
export async function activeUsers(metricsPort: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  return Number(/active_users\{[^}]*\} (\d+)/.exec(text)?.[1]);
}

/** In-process options of a service (a fault hook, where a real process would read PARLEY_FAULT). */
export interface ServiceOptions {
  messages?: Parameters<typeof startMessagesService>[1];
}

export async function startStack(extra: Record<string, string> = {}, options: ServiceOptions = {}): Promise<Stack> {
  const env = await createTestEnv();
  const vars = { ...env.env, PORT: '0', METRICS_PORT: '0', PROJECTOR_ACK_WAIT_MS: '2000', ...extra };
  const services = await startServices(vars, options);
  return {
    env,
    vars,
    ...services,
    async stop() {
      await services.stop();
      await env.cleanup();
    },
  };
}

/**
 * users, messages and gateway as compiled processes (`services/<name>/dist/main.js`), as operators run
 * them, each with `envOf(service)` and `nodeArgs` (e.g. `--import` of the tracing hook); their
 * output goes to `output`. Resolves once the gateway at `baseUrl` answers; `stop()` sends SIGTERM
 * and waits for every exit.
 */
export async function startCompiledServices(options: {
  envOf: (service: string) => Record<string, string | undefined>;
  baseUrl: string;
  output: string[];
  nodeArgs?: string[];
}): Promise<{ stop(): Promise<void> }> {
  const root = path.resolve(import.meta.dirname, '..');
  const children = ['users', 'messages', 'gateway'].map((service) => {
    const main = path.join(root, 'services', service, 'dist', 'main.js');
    const child = spawn(process.execPath, [...(options.nodeArgs ?? []), main], { env: options.envOf(service), stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => options.output.push(String(d)));
    child.stderr!.on('data', (d) => options.output.push(String(d)));
    return child;
  });
  const stop = async () => {
    for (const child of children) child.kill('SIGTERM');
    await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r(null) : c.once('exit', r)))));
  };
  try {
    await eventually(async () => ((await fetch(`${options.baseUrl}/api/v1/chats`).catch(() => null))?.status === 401 ? true : undefined), 30_000, 'gateway up');
  } catch (error) {
    await stop();
    throw error;
  }
  return { stop };
}

export type Services = Pick<Stack, 'baseUrl' | 'wsUrl' | 'metricsPorts' | 'stop'>;

/**
 * The three services on an existing env, stoppable without dropping it: what a test needs that
 * stops them to run a command against their data (a rebuild) and starts them again.
 */
export async function startServices(vars: Record<string, string>, options: ServiceOptions = {}): Promise<Services> {
  const users = await startUsersService(vars);
  const messages = await startMessagesService(vars, options.messages);
  const gateway = await startGatewayService(vars);
  return {
    baseUrl: `http://127.0.0.1:${gateway.port}`,
    wsUrl: `ws://127.0.0.1:${gateway.port}/ws`,
    metricsPorts: { gateway: gateway.metricsPort, users: users.metricsPort, messages: messages.metricsPort },
    async stop() {
      await gateway.stop();
      await messages.stop();
      await users.stop();
    },
  };
}

/** Every message a stream stores, in order, as text: what a replay would see. */
export async function storedMessages(nc: NatsConnection, stream: string): Promise<{ seq: number; subject: string; text: string }[]> {
  const { state } = await (await jetstreamManager(nc)).streams.info(stream);
  const out: { seq: number; subject: string; text: string }[] = [];
  await readStream(jetstream(nc), stream, { lastSeq: state.messages === 0 ? 0 : state.last_seq }, (m) => {
    out.push({ seq: m.seq, subject: m.subject, text: m.string() });
  });
  return out;
}

/**
 * What Redis holds under a namespace, as text a test can search: each value opened with the
 * development CACHE_KEY the local stack runs with (values are sealed, issue 23 finding 9), or as
 * stored when it does not open (a planted or foreign entry must be searched too).
 */
export async function cachedTexts(redis: Redis, namespace: string): Promise<Map<string, string>> {
  const keys = (await redis.keys(`${namespace}:*`)).filter((k) => !k.endsWith('#fill'));
  const values = keys.length > 0 ? await redis.mget(...keys) : [];
  const secret = cacheKeyFrom(DEV_CACHE_KEY);
  const out = new Map<string, string>();
  keys.forEach((key, i) => {
    const raw = values[i];
    if (raw === null || raw === undefined) return;
    const opened = openSealed(secret, key, raw);
    out.set(key, opened === undefined ? raw : JSON.stringify(opened));
  });
  return out;
}

/** One cached value, opened with the development CACHE_KEY; undefined when absent or not sealed by the services. */
export async function readCached<T = any>(redis: Redis, fullKey: string): Promise<T | undefined> {
  const raw = await redis.get(fullKey);
  return raw === null ? undefined : openSealed<T>(cacheKeyFrom(DEV_CACHE_KEY), fullKey, raw);
}

/**
 * The first match of `pattern` in a finished mail to `to` in the development mail folder
 * (MAIL_DIR: one .eml per mail, quoted-printable decoded first), waiting for it to be written.
 */
export async function mailMatch(dir: string, to: string, pattern: RegExp): Promise<string> {
  return eventually(async () => {
    for (const file of (await readdir(dir)).filter((f) => f.endsWith('.eml'))) {
      const text = (await readFile(path.join(dir, file), 'utf8')).replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
      if (!text.includes(to)) continue;
      const match = pattern.exec(text);
      if (match) return match[1] ?? match[0];
    }
    return undefined;
  }, 10_000, `a mail to ${to} matching ${pattern}`);
}

export interface HttpAnswer<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export async function http<T = any>(
  stack: Pick<Stack, 'baseUrl'>,
  method: string,
  path: string,
  options: { token?: string; body?: unknown; raw?: string } = {},
): Promise<HttpAnswer<T>> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(`${stack.baseUrl}${path}`, { method, headers, body });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined, headers: response.headers };
}

export interface Account {
  id: string;
  username: string;
  password: string;
  accessToken: string;
  refreshToken: string;
}

let counter = 0;

export async function register(stack: Pick<Stack, 'baseUrl'>, name = `user${++counter}${Date.now() % 100000}`): Promise<Account> {
  const password = `pw-${name}-long-enough`;
  const answer = await http(stack, 'POST', '/api/v1/auth/register', {
    body: { username: name, email: `${name}@example.test`, password },
  });
  if (answer.status !== 201) throw new Error(`register ${name}: ${answer.status} ${JSON.stringify(answer.body)}`);
  return { id: answer.body.user.id, username: name, password, accessToken: answer.body.accessToken, refreshToken: answer.body.refreshToken };
}

/** A WebSocket client that records every frame and lets a test wait for the one it expects. */
export class TestSocket {
  readonly frames: any[] = [];
  closed: { code: number; reason: string } | null = null;
  private waiters: (() => void)[] = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      this.frames.push(JSON.parse(data.toString()));
      this.wake();
    });
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() };
      this.wake();
    });
  }

  /**
   * Opens a socket. With a token, it also waits for a ping's pong (`handshake`, on by default), so
   * the socket is known to be authenticated and subscribed when open() returns. Pass
   * `{ handshake: false }` where the first frame matters (resume).
   *
   * Known issue being investigated (see the closing note of this session): under a loaded test run,
   * a freshly opened socket is occasionally dropped without a close frame (1006) before its first
   * pong. A client reconnects in that case, and so does the handshake, up to three times; the
   * drop itself is logged so it stays visible.
   */
  static async open(url: string, token?: string, options: { handshake?: boolean; headers?: Record<string, string> } = {}): Promise<TestSocket> {
    const handshake = token !== undefined && options.handshake !== false;
    for (let attempt = 1; ; attempt++) {
      const ws = new WebSocket(token ? `${url}?token=${encodeURIComponent(token)}` : url, { headers: options.headers });
      const socket = new TestSocket(ws);
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
        ws.once('error', reject);
      });
      if (!handshake) return socket;
      try {
        await socket.sync();
        return socket;
      } catch (error) {
        if (attempt >= 3 || socket.closed?.code !== 1006) throw error;
        console.warn(`test socket dropped (1006) before its first pong; reconnecting (attempt ${attempt})`);
      }
    }
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  /** Waits for (and removes) the first frame matching `match`. */
  async next(match: (frame: any) => boolean, timeoutMs = 5_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.frames.findIndex(match);
      if (index >= 0) return this.frames.splice(index, 1)[0];
      if (this.closed) throw new Error(`socket closed (${this.closed.code}) while waiting; frames: ${this.describe()}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching frame within ${timeoutMs} ms; frames: ${this.describe()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
  }

  /** Round trip: once the pong arrives, the gateway has handled every frame sent before the ping. */
  async sync(): Promise<void> {
    this.send({ op: 'ping' });
    await this.next((f) => f.op === 'pong');
  }

  async waitClosed(timeoutMs = 5_000): Promise<{ code: number; reason: string }> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed) {
      if (Date.now() > deadline) throw new Error('socket did not close');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        this.waiters.push(() => (clearTimeout(timer), resolve()));
      });
    }
    return this.closed;
  }

  close(): void {
    this.ws.close();
  }

  /** The frames received so far, shortened for an error message. */
  private describe(): string {
    const text = JSON.stringify(this.frames.map((f) => (f.op === 'event' ? { op: f.op, type: f.type, chatId: f.chatId, seq: f.seq } : f)));
    return text.length > 2000 ? `${text.slice(0, 2000)}… (${this.frames.length} frames)` : text;
  }

  private wake(): void {
    const waiters = this.waiters.splice(0);
    for (const w of waiters) w();
  }
}

/**
 * A TCP relay to NATS that the test can cut, as a network fault between one gateway and NATS
 * would: `cut()` drops every connection through it and refuses new ones until `restore()`.
 */
export async function natsRelay(target: URL): Promise<{ url: string; cut(): void; restore(): void; close(): Promise<void> }> {
  let open = true;
  const pairs = new Set<net.Socket>();
  const server = net.createServer((client) => {
    if (!open) return void client.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const s of [client, upstream]) {
      pairs.add(s);
      s.on('error', () => {});
      s.on('close', () => {
        pairs.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `nats://127.0.0.1:${port}`,
    cut() {
      open = false;
      for (const s of pairs) s.destroy();
    },
    restore() {
      open = true;
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
