import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { inboxPrefix } from '@parley/contracts';
import { jetstreamManager } from '@nats-io/jetstream';
import { waitUntilSignIn } from '@parley/testing';
import { generateSecrets, SECRET_FILES, writeSecrets, writeServerAuthorization, type InstallationSecrets } from '@parley/secrets';
import { createConnection, createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ManagedProcess } from './process.js';

/**
 * Private PostgreSQL, NATS and Redis servers for the fault suite: each scenario starts its own, on
 * free ports, so that it can kill, pause and restart them without touching the shared servers the
 * rest of the tests use. The binaries are Debian's (the same that `.ci/run` starts).
 */

// NATS_SERVER_BIN runs the suite against another server version (docs/reliability.md: the cluster
// scenario on NATS 2.10), as scripts/check-deploy.sh does.
const NATS_SERVER = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

/**
 * The binary a cluster's nodes run: NATS_CLUSTER_SERVER_BIN, or NATS_SERVER_BIN when a run is
 * pointed at one version, else the NATS release scripts/nats-cluster-server.sh pins and fetches
 * (2.15.1: 2.9.10 breaks Raft's promises in the cluster scenario, as that script says), else, when
 * it cannot be fetched, the machine's, with a warning.
 */
let clusterBin: string | undefined;
export function clusterServerBin(): string {
  clusterBin ??= (() => {
    const chosen = process.env.NATS_CLUSTER_SERVER_BIN ?? process.env.NATS_SERVER_BIN;
    if (chosen) return chosen;
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/nats-cluster-server.sh');
    try {
      return execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
    } catch {
      console.warn(`cluster scenario: the pinned NATS could not be fetched; running on ${NATS_SERVER}, whose cluster defects may fail it (docs/reliability.md)`);
      return NATS_SERVER;
    }
  })();
  return clusterBin;
}
const REDIS_SERVER = '/usr/bin/redis-server';
const PG_BIN = '/usr/lib/postgresql/15/bin';

const run = promisify(execFile);

/** Ports this process has handed out: the kernel may offer a closed one again before its server binds it. */
const handedOut = new Set<number>();

/**
 * A port nothing listens on now and this process has not handed out before. The second rule
 * because a scenario's ports are all chosen before its servers bind them: once (2026-12-05) a
 * cluster scenario's Postgres never became ready although something listened on its port, and
 * the likeliest cause is a NATS node given the same port a moment later.
 */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const server = createServer().listen(0, '127.0.0.1', () => {
        const { port } = server.address() as { port: number };
        server.close(() => resolve(port));
      });
      server.on('error', reject);
    });
    if (handedOut.has(port)) continue;
    handedOut.add(port);
    return port;
  }
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
  /** The nats-server binary this server runs. */
  readonly bin: string;
  private readonly configFile: string;

  constructor(
    port: number,
    readonly storeDir: string,
    readonly namespace: string,
    /** A node of a cluster: its name, route port and the routes to all nodes, its binary; the nodes share one set of secrets. */
    cluster?: { serverName: string; port: number; routes: number[]; secrets: InstallationSecrets; bin: string },
  ) {
    super(cluster ? `nats-server ${cluster.serverName}` : 'nats-server', port);
    this.bin = cluster?.bin ?? NATS_SERVER;
    this.secrets = cluster?.secrets ?? generateSecrets(namespace);
    mkdirSync(storeDir, { recursive: true });
    writeSecrets(this.secretsDir, this.secrets);
    this.configFile = path.join(this.secretsDir, `nats-server${cluster ? `-${cluster.serverName}` : ''}.conf`);
    // JetStream in the file, not as -js on the command line: a configuration reload (addNamespace)
    // would otherwise turn it off.
    const lines = [`jetstream { store_dir: ${JSON.stringify(storeDir)} }`, `include ./${SECRET_FILES.natsAuthorization}`];
    if (cluster) {
      const routes = cluster.routes.map((p) => `"nats-route://127.0.0.1:${p}"`).join(', ');
      lines.unshift(`server_name: ${cluster.serverName}`);
      lines.push(`cluster { name: parley, listen: "127.0.0.1:${cluster.port}", routes: [${routes}] }`);
    }
    writeFileSync(this.configFile, lines.join('\n') + '\n');
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
    // NATS_DEBUG_LOG_DIR: a diagnostic run, each node's debug log (-D) appended to a file there
    // instead of its output (docs/reliability.md: a replica that never caught up on 2.10).
    const debugDir = process.env.NATS_DEBUG_LOG_DIR;
    const debug = debugDir ? ['-D', '-l', path.join(debugDir, `${this.name.replace(/\W+/g, '-')}-${this.port}.log`)] : [];
    return spawn(this.bin, ['-c', this.configFile, '-a', '127.0.0.1', '-p', String(this.port), ...debug], { stdio: ['ignore', 'pipe', 'pipe'] });
  }
}

/**
 * Three nats-server processes on loopback with cluster routes between them (one JetStream domain,
 * R3 streams when the services run with STREAM_REPLICAS=3), sharing one set of bus users. The
 * services get all three URLs and fail over between them.
 */
export class NatsCluster {
  private constructor(readonly nodes: NatsServer[]) {}

  static async start(dir: string, namespace: string, size = 3): Promise<NatsCluster> {
    const clientPorts: number[] = [];
    const routePorts: number[] = [];
    for (let i = 0; i < size; i++) {
      clientPorts.push(await freePort());
      routePorts.push(await freePort());
    }
    const secrets = generateSecrets(namespace);
    const bin = clusterServerBin();
    const nodes = clientPorts.map(
      (port, i) => new NatsServer(port, path.join(dir, `nats-n${i + 1}`, 'store'), namespace, { serverName: `n${i + 1}`, port: routePorts[i]!, routes: routePorts, secrets, bin }),
    );
    const cluster = new NatsCluster(nodes);
    try {
      await Promise.all(nodes.map((n) => n.start()));
      await cluster.waitForMetaLeader();
      return cluster;
    } catch (error) {
      await cluster.stop();
      throw error;
    }
  }

  get namespace(): string {
    return this.nodes[0]!.namespace;
  }

  /** Every node's URL, as NATS_URL lists them. */
  get url(): string {
    return this.nodes.map((n) => n.url).join(',');
  }

  node(serverName: string): NatsServer {
    const node = this.nodes.find((n) => n.name === `nats-server ${serverName}`);
    if (!node) throw new Error(`no cluster node ${serverName}`);
    return node;
  }

  /** What the services read to sign in: all three servers, the shared bus users, three replicas. */
  env(): Record<string, string> {
    return { ...this.nodes[0]!.env(), NATS_URL: this.url, STREAM_REPLICAS: String(this.nodes.length) };
  }

  /** A connection to the running nodes as the backup process (it may read every stream's state). */
  connect(): Promise<NatsConnection> {
    return connect({
      servers: this.nodes.filter((n) => n.running).map((n) => n.url),
      authenticator: nkeyAuthenticator(new TextEncoder().encode(this.nodes[0]!.secrets.nkeys.backup.seed)),
      inboxPrefix: inboxPrefix(this.namespace, 'backup'),
    });
  }

  /** Waits until JetStream's meta group has a leader (streams can be created and placed). */
  async waitForMetaLeader(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const nc = await this.connect();
        try {
          const jsm = await jetstreamManager(nc, { timeout: 2_000 });
          await jsm.getAccountInfo();
          return;
        } finally {
          await nc.close();
        }
      } catch (error) {
        if (Date.now() > deadline) throw new Error(`the NATS cluster has no JetStream leader: ${(error as Error).message}`);
        await sleep(250);
      }
    }
  }

  async stop(): Promise<void> {
    for (const node of this.nodes) {
      node.resume();
      await node.kill('SIGKILL').catch(() => {});
    }
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

/**
 * The servers of one scenario, in one temporary folder removed by `stop()`: NATS (one server, or
 * a cluster of `natsCluster` nodes, whose first node is then `nats`), Redis and Postgres.
 */
export class PrivateServers {
  private constructor(
    readonly dir: string,
    readonly nats: NatsServer,
    readonly redis: RedisServer,
    readonly postgres: PostgresServer,
    readonly cluster: NatsCluster | null,
  ) {}

  static async start(namespace: string, options: { natsCluster?: number } = {}): Promise<PrivateServers> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-faults-'));
    chmodSync(dir, 0o711); // the postgres user must reach its data folder inside
    const [redisPort, pgPort] = [await freePort(), await freePort()];
    const cluster = options.natsCluster ? await NatsCluster.start(dir, namespace, options.natsCluster) : null;
    const nats = cluster?.nodes[0] ?? new NatsServer(await freePort(), path.join(dir, 'nats'), namespace);
    const servers = new PrivateServers(dir, nats, new RedisServer(redisPort), new PostgresServer(pgPort, path.join(dir, 'pg')), cluster);
    try {
      await servers.postgres.init();
      await Promise.all([cluster ? Promise.resolve() : servers.nats.start(), servers.redis.start(), servers.postgres.start()]);
      await servers.waitForPostgres();
      return servers;
    } catch (error) {
      await servers.stop();
      throw error;
    }
  }

  /** Postgres listens before it accepts queries (recovery); pg_isready tells them apart. */
  async waitForPostgres(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await run(path.join(PG_BIN, 'pg_isready'), ['-h', '127.0.0.1', '-p', String(this.postgres.port), '-U', 'postgres']);
        return;
      } catch (error) {
        if (Date.now() > deadline || !this.postgres.running) {
          const state = this.postgres.running ? 'running' : 'exited';
          throw new Error(`postgres not ready (${state}): ${(error as Error).message}\n${this.postgres.output.slice(-20).join('\n')}`);
        }
        await sleep(100);
      }
    }
  }

  /** What the services read to reach these servers. */
  env(): Record<string, string> {
    return { DATABASE_URL: this.postgres.url(), ...(this.cluster?.env() ?? this.nats.env()), REDIS_URL: this.redis.url, PARLEY_NAMESPACE: this.nats.namespace, REGISTER_MAX_PER_ADDRESS: '100000' };
  }

  async stop(): Promise<void> {
    await this.cluster?.stop();
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
