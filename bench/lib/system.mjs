// The system under test, started as child processes: users, messages and two gateways, on a fresh
// database and NATS namespace that are removed at the end (as packages/testing does for tests).
import { fork, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { Redis } from 'ioredis';
import { inspectArg } from './heap.mjs';

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * A port nothing listens on right now, below the ephemeral range (32768 and up on Linux), where
 * the kernel's own choices for outgoing connections and for port 0 cannot take it before the
 * service binds it. Still a race with other processes doing the same, so starts are retried.
 */
export async function freePort() {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    const free = await new Promise((resolve) => {
      const server = net.createServer();
      server.unref();
      server.once('error', () => resolve(false));
      server.listen(port, '0.0.0.0', () => server.close(() => resolve(true)));
    });
    if (free) return port;
  }
}

/** Random alphanumeric string (JWT_SECRET: 48 characters). */
export function randomText(length) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  return Array.from(randomBytes(length), (b) => alphabet[b % alphabet.length]).join('');
}

/**
 * Resources and processes of one run. `cleanup()` is idempotent and runs whatever happened before:
 * it is called from `finally` and from signal handlers.
 */
export class System {
  constructor({ root, natsUrl, adminDatabaseUrl, redisUrl, log, cpuProfDir, serviceEnv = {} }) {
    const id = randomBytes(4).toString('hex');
    this.root = root;
    this.id = id;
    this.namespace = `bench${id}`;
    this.dbName = `parley_bench_${id}`;
    this.natsUrl = natsUrl;
    this.adminDatabaseUrl = adminDatabaseUrl;
    const db = new URL(adminDatabaseUrl);
    db.pathname = `/${this.dbName}`;
    this.databaseUrl = db.toString();
    this.redisUrl = redisUrl;
    this.log = log;
    this.cpuProfDir = cpuProfDir;
    this.serviceEnv = serviceEnv;
    // Registration writes a verification mail per user (.eml files without SMTP): a run's own
    // folder, removed with the run, not the repository's data/mail, which would keep 2,000 files a
    // run and slow down every later erasure that looks through it (the file mailer's forget).
    this.mailDir = path.join(os.tmpdir(), `parley-bench-mail-${id}`);
    this.children = new Map();
    this.processes = {};
    this.created = { database: false };
    this.cleaned = false;
  }

  env(extra) {
    const env = {
      ...process.env,
      PARLEY_NAMESPACE: this.namespace,
      DATABASE_URL: this.databaseUrl,
      NATS_URL: this.natsUrl,
      REDIS_URL: this.redisUrl ?? '',
      JWT_SECRET: this.jwtSecret,
      MAIL_DIR: this.mailDir,
      // Long enough for the whole run: sockets and API calls use tokens issued at registration.
      ACCESS_TOKEN_TTL: '14400',
      LOG_LEVEL: 'warn',
      // The idle phase holds many sockets per user (connections, not users, are what it measures),
      // and all of them come from this one address.
      WS_MAX_SOCKETS_PER_USER: '100000',
      WS_MAX_UNAUTHENTICATED_PER_ADDRESS: '100000',
      // Thousands of users registered from this one address.
      REGISTER_MAX_PER_ADDRESS: '1000000',
      // The chat layout's groups are created by whichever member comes first.
      GROUPS_PER_DAY: '1000000',
      ...extra,
    };
    if (!this.redisUrl) delete env.REDIS_URL;
    delete env.NODE_OPTIONS;
    return env;
  }

  spawnService(label, service, extra, nodeArgs = []) {
    const child = spawn(process.execPath, [...nodeArgs, path.join(this.root, 'services', service, 'dist', 'main.js')], {
      env: this.env(extra),
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    this.track(label, child);
    return child;
  }

  track(label, child) {
    this.children.set(label, child);
    this.processes[label] = child.pid;
    child.on('exit', (code, signal) => {
      this.children.delete(label);
      if (!this.stopping && !this.cleaned) this.log(`bench: ${label} exited unexpectedly (${signal ?? code})`);
      child.exitedUnexpectedly = !this.stopping;
    });
  }

  /** Starts users, messages and two gateways; resolves once every one is ready. */
  async startParley() {
    this.jwtSecret = randomText(48);
    const admin = new pg.Client({ connectionString: this.adminDatabaseUrl });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${this.dbName}`);
      this.created.database = true;
    } finally {
      await admin.end();
    }
    const profArgs = (name) => {
      if (!this.cpuProfDir) return [];
      mkdirSync(this.cpuProfDir, { recursive: true });
      return ['--cpu-prof', '--cpu-prof-dir', this.cpuProfDir, '--cpu-prof-name', `${name}.cpuprofile`];
    };
    // users and messages first (they create the schema and streams); the gateways ask them for
    // memberships as soon as sockets connect.
    const users = await this.startService('users', 'users', () => ({}));
    const messages = await this.startService('messages', 'messages', () => ({}), profArgs('messages'));
    // The gateways' inspectors (loopback) let the idle phase read their memory after a full
    // collection (lib/heap.mjs); an inspector nobody attaches to costs nothing measurable.
    const inspectPorts = [await freePort(), await freePort()];
    const a = await this.startService('gatewayA', 'gateway', async () => ({ PORT: String(await freePort()) }), [...profArgs('gateway-a'), inspectArg(inspectPorts[0])]);
    const b = await this.startService('gatewayB', 'gateway', async () => ({ PORT: String(await freePort()) }), [...profArgs('gateway-b'), inspectArg(inspectPorts[1])]);
    this.ports = { usersMetrics: users.METRICS_PORT, messagesMetrics: messages.METRICS_PORT };
    this.gateways = [
      { label: 'gatewayA', port: Number(a.PORT), metricsPort: Number(a.METRICS_PORT), inspectPort: inspectPorts[0] },
      { label: 'gatewayB', port: Number(b.PORT), metricsPort: Number(b.METRICS_PORT), inspectPort: inspectPorts[1] },
    ];
  }

  /** Starts one service on fresh ports and waits until it is ready; retries if a port was taken meanwhile. */
  async startService(label, service, ports, nodeArgs = []) {
    for (let attempt = 1; ; attempt++) {
      const extra = { ...(await ports()), METRICS_PORT: String(await freePort()), ...this.serviceEnv };
      this.spawnService(label, service, extra, nodeArgs);
      try {
        await this.waitReady(label, Number(extra.METRICS_PORT));
        return extra;
      } catch (error) {
        if (attempt >= 3 || this.children.has(label)) throw error;
        this.log(`bench: ${label} did not start (${error.message}); retrying on other ports`);
      }
    }
  }

  async waitReady(label, metricsPort, timeoutMs = 60_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!this.children.has(label)) throw new Error(`${label} exited during start`);
      const status = await fetch(`http://127.0.0.1:${metricsPort}/readyz`)
        .then((r) => r.status)
        .catch(() => 0);
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`${label} not ready within ${timeoutMs / 1000} s`);
      await sleep(100);
    }
  }

  /** Stops Parley's processes (SIGTERM, then SIGKILL after a grace period). */
  async stopParley() {
    // Gateways first: closing their sockets still asks users and messages about presence.
    await this.stopChildren(['gatewayA', 'gatewayB']);
    await this.stopChildren(['messages', 'users']);
  }

  async stopChildren(labels) {
    this.stopping = true;
    const waits = [];
    for (const label of labels) {
      const child = this.children.get(label);
      if (!child) continue;
      waits.push(new Promise((resolve) => child.once('exit', resolve)));
      child.kill('SIGTERM');
    }
    const timer = setTimeout(() => {
      for (const label of labels) this.children.get(label)?.kill('SIGKILL');
    }, 15_000);
    await Promise.all(waits);
    clearTimeout(timer);
    this.stopping = false;
  }

  /** The bare uWebSockets.js fan-out (bench/ceiling.mjs) on two ports, like the two gateways. */
  async startCeiling(membersFile, nodeArgs = []) {
    const ports = [await freePort(), await freePort()];
    const inspectPort = await freePort();
    const child = fork(path.join(this.root, 'bench', 'ceiling.mjs'), [], {
      env: { ...process.env, CEILING_PORTS: ports.join(','), CEILING_MEMBERS: membersFile, NODE_OPTIONS: '' },
      execArgv: [...nodeArgs, inspectArg(inspectPort)],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.track('ceiling', child);
    await new Promise((resolve, reject) => {
      child.once('message', (m) => (m.type === 'ready' ? resolve() : reject(new Error(m.message))));
      child.once('exit', (code) => reject(new Error(`ceiling exited (${code})`)));
    });
    this.ceilingPorts = ports;
    return ports.map((port, i) => ({ label: `ceiling${'AB'[i]}`, port, pid: child.pid, inspectPort }));
  }

  async stopCeiling() {
    await this.stopChildren(['ceiling']);
  }

  /** Postgres backends of the bench database (for their CPU). */
  async databaseBackendPids() {
    const client = new pg.Client({ connectionString: this.adminDatabaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query('SELECT pid FROM pg_stat_activity WHERE datname = $1', [this.dbName]);
      return rows.map((r) => r.pid);
    } finally {
      await client.end();
    }
  }

  /** The NATS server's version, as it tells a client (recorded with the results: it changes them). */
  async natsServerVersion() {
    const nc = await connect({ servers: this.natsUrl, timeout: 5_000 });
    try {
      return nc.info?.version ?? 'unknown';
    } finally {
      await nc.close().catch(() => {});
    }
  }

  /** Kills what still runs, drops the database, deletes the namespace's streams and Redis keys. */
  async cleanup() {
    if (this.cleaned) return;
    this.cleaned = true;
    this.stopping = true;
    for (const child of this.children.values()) child.kill('SIGTERM');
    const deadline = Date.now() + 8_000;
    while (this.children.size > 0 && Date.now() < deadline) await sleep(100);
    for (const child of this.children.values()) child.kill('SIGKILL');
    const problems = [];
    rmSync(this.mailDir, { recursive: true, force: true });
    if (this.created.database) {
      const admin = new pg.Client({ connectionString: this.adminDatabaseUrl });
      try {
        await admin.connect();
        await admin.query(`DROP DATABASE IF EXISTS ${this.dbName} WITH (FORCE)`);
      } catch (error) {
        problems.push(`drop database ${this.dbName}: ${error.message}`);
      } finally {
        await admin.end().catch(() => {});
      }
    }
    let nc;
    try {
      nc = await connect({ servers: this.natsUrl, timeout: 5_000 });
      const jsm = await jetstreamManager(nc);
      for await (const name of jsm.streams.names()) {
        // KV buckets (presence) live in streams named KV_<bucket>.
        if (name.startsWith(`${this.namespace}_`) || name.startsWith(`KV_${this.namespace}_`)) await jsm.streams.delete(name);
      }
    } catch (error) {
      problems.push(`delete streams of ${this.namespace}: ${error.message}`);
    } finally {
      await nc?.close().catch(() => {});
    }
    if (this.redisUrl) {
      const redis = new Redis(this.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        let cursor = '0';
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', `${this.namespace}:*`, 'COUNT', 1000);
          cursor = next;
          if (keys.length > 0) await redis.del(...keys);
        } while (cursor !== '0');
      } catch {
        // Redis is only a cache; nothing to clean without it.
      } finally {
        redis.disconnect();
      }
    }
    return problems;
  }
}
