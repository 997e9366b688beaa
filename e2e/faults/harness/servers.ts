import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { waitUntilSignIn } from '@parley/testing';
import { generateSecrets, SECRET_FILES, writeSecrets, writeServerAuthorization, type InstallationSecrets } from '@parley/secrets';
import { createConnection, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ManagedProcess } from './process.js';

/**
 * Private PostgreSQL, NATS and Redis servers for the fault suite: each scenario starts its own, on
 * free ports, so that it can kill, pause and restart them without touching the shared servers the
 * rest of the tests use. The binaries are Debian's (the same that `.ci/run` starts).
 */

const NATS_SERVER = '/usr/sbin/nats-server';
const REDIS_SERVER = '/usr/bin/redis-server';
const PG_BIN = '/usr/lib/postgresql/15/bin';

const run = promisify(execFile);

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });
}

export async function waitForPort(port: number, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await portOpen(port))) {
    if (Date.now() > deadline) throw new Error(`${what} did not listen on port ${port} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** One server process that the test can kill, pause and start again on the same port and data. */
export abstract class ServerProcess extends ManagedProcess {
  constructor(
    readonly name: string,
    readonly port: number,
  ) {
    super(name);
  }

  protected abstract spawnServer(): ChildProcess;

  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running`);
    this.adopt(this.spawnServer());
    await waitForPort(this.port, this.name);
  }
}

/**
 * nats-server with the bus users and permissions of one namespace, as `npm run secrets` makes them
 * for production: every service of the scenario signs in as itself (NATS_NKEY_DIR).
 */
export class NatsServer extends ServerProcess {
  readonly secrets: InstallationSecrets;
  private readonly configFile: string;

  constructor(
    port: number,
    readonly storeDir: string,
    readonly namespace: string,
  ) {
    super('nats-server', port);
    this.secrets = generateSecrets(namespace);
    mkdirSync(storeDir, { recursive: true });
    writeSecrets(this.secretsDir, this.secrets);
    this.configFile = path.join(this.secretsDir, 'nats-server.conf');
    // JetStream in the file, not as -js on the command line: a configuration reload (addNamespace)
    // would otherwise turn it off.
    writeFileSync(this.configFile, `jetstream { store_dir: ${JSON.stringify(storeDir)} }\ninclude ./${SECRET_FILES.natsAuthorization}\n`);
  }

  get secretsDir(): string {
    return path.join(this.storeDir, '..', 'nats-secrets');
  }

  private readonly others: InstallationSecrets[] = [];

  /**
   * Users of a second installation on this server (where a restore goes), whose backup job may
   * read this one's erasure ledger; applied by a configuration reload. Returns its services' env.
   */
  async addNamespace(namespace: string): Promise<Record<string, string>> {
    const secrets = generateSecrets(namespace, { ledgersOf: [this.namespace] });
    this.others.push(secrets);
    const dir = path.join(this.secretsDir, namespace);
    writeSecrets(dir, secrets);
    writeServerAuthorization(path.join(this.secretsDir, SECRET_FILES.natsAuthorization), [this.secrets, ...this.others]);
    this.signal('SIGHUP');
    await waitUntilSignIn(this.url, secrets.nkeys.users.seed);
    return {
      PARLEY_NAMESPACE: namespace,
      NATS_NKEY_DIR: path.join(dir, SECRET_FILES.nkeyDir),
      GATEWAY_SIGNING_KEY: secrets.signing.seed,
      GATEWAY_PUBLIC_KEY: secrets.signing.publicKey,
    };
  }

  /** What the services read to sign in. */
  env(): Record<string, string> {
    return {
      NATS_URL: this.url,
      NATS_NKEY_DIR: path.join(this.secretsDir, SECRET_FILES.nkeyDir),
      GATEWAY_SIGNING_KEY: this.secrets.signing.seed,
      GATEWAY_PUBLIC_KEY: this.secrets.signing.publicKey,
    };
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  protected spawnServer(): ChildProcess {
    return spawn(NATS_SERVER, ['-c', this.configFile, '-a', '127.0.0.1', '-p', String(this.port)], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

export class RedisServer extends ServerProcess {
  constructor(port: number) {
    super('redis-server', port);
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  protected spawnServer(): ChildProcess {
    return spawn(REDIS_SERVER, ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/**
 * A PostgreSQL cluster of its own (`initdb` into a temporary folder). Postgres refuses to run as
 * root, so when the tests run as root the cluster belongs to the `postgres` system user.
 */
export class PostgresServer extends ServerProcess {
  private owner: { uid: number; gid: number } | undefined;

  constructor(
    port: number,
    readonly dataDir: string,
  ) {
    super('postgres', port);
  }

  /** The admin URL; services create their own database from it. */
  url(database = 'parley'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  async init(): Promise<void> {
    if (process.getuid?.() === 0) {
      const { stdout } = await run('id', ['-u', 'postgres']);
      const { stdout: gid } = await run('id', ['-g', 'postgres']);
      this.owner = { uid: Number(stdout.trim()), gid: Number(gid.trim()) };
    }
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    if (this.owner) chownSync(this.dataDir, this.owner.uid, this.owner.gid);
    await new Promise<void>((resolve, reject) => {
      const child = spawn(path.join(PG_BIN, 'initdb'), ['-D', this.dataDir, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-sync'], {
        stdio: ['ignore', 'ignore', 'pipe'],
        ...this.owner,
      });
      let err = '';
      child.stderr!.on('data', (d) => (err += String(d)));
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`initdb failed (${code}): ${err}`))));
    });
  }

  protected spawnServer(): ChildProcess {
    // Durability settings off: the scenarios kill the server process, not the machine, and the
    // page cache survives a process kill.
    const settings = ['listen_addresses=127.0.0.1', `unix_socket_directories=${this.dataDir}`, 'fsync=off', 'synchronous_commit=off', 'full_page_writes=off', 'max_connections=200'];
    return spawn(path.join(PG_BIN, 'postgres'), ['-D', this.dataDir, '-p', String(this.port), ...settings.flatMap((s) => ['-c', s])], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...this.owner,
    });
  }

  /** A fast shutdown (SIGINT: disconnect everyone, checkpoint, exit), as an operator's restart. */
  async stop(): Promise<void> {
    await this.kill('SIGINT');
  }
}

/** The three servers of one scenario, in one temporary folder removed by `stop()`. */
export class PrivateServers {
  private constructor(
    readonly dir: string,
    readonly nats: NatsServer,
    readonly redis: RedisServer,
    readonly postgres: PostgresServer,
  ) {}

  static async start(namespace: string): Promise<PrivateServers> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-faults-'));
    chmodSync(dir, 0o711); // the postgres user must reach its data folder inside
    const [natsPort, redisPort, pgPort] = [await freePort(), await freePort(), await freePort()];
    const servers = new PrivateServers(dir, new NatsServer(natsPort, path.join(dir, 'nats'), namespace), new RedisServer(redisPort), new PostgresServer(pgPort, path.join(dir, 'pg')));
    await servers.postgres.init();
    await Promise.all([servers.nats.start(), servers.redis.start(), servers.postgres.start()]);
    await servers.waitForPostgres();
    return servers;
  }

  /** Postgres listens before it accepts queries (recovery); pg_isready tells them apart. */
  async waitForPostgres(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await run(path.join(PG_BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(this.postgres.port), '-U', 'postgres']);
        return;
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`postgres not ready: ${(error as Error).message}`);
        await sleep(100);
      }
    }
  }

  /** What the services read to reach these servers. */
  env(): Record<string, string> {
    return { DATABASE_URL: this.postgres.url(), ...this.nats.env(), REDIS_URL: this.redis.url, PARLEY_NAMESPACE: this.nats.namespace };
  }

  async stop(): Promise<void> {
    for (const server of [this.nats, this.redis, this.postgres]) {
      server.resume();
      await server.kill('SIGKILL').catch(() => {});
    }
    try {
      if (statSync(this.dir)) rmSync(this.dir, { recursive: true, force: true });
    } catch {
      // already gone
    }
  }
}
