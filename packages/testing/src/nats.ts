import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { createUserKey, generateSecrets, SECRET_FILES, writeSecrets, writeServerAuthorization, type InstallationSecrets } from '@parley/secrets';

/** Debian's nats-server (the one .ci/run starts); NATS_SERVER_BIN overrides it. */
export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN ?? '/usr/sbin/nats-server';

export function natsServerAvailable(): boolean {
  return existsSync(NATS_SERVER_BIN);
}

/**
 * A private nats-server with JetStream that requires credentials: the users and permissions of
 * one namespace exactly as `npm run secrets` generates them for production, plus `admin`, an
 * unrestricted user the tests use to look inside and clean up. Nothing listens without a password:
 * every process of the system under test connects as its own principal (NATS_NKEY_DIR).
 */
export class AuthenticatedNats {
  /** Every permissions violation the server logged (publish or subscribe refused, with the user's key). */
  readonly violations: string[] = [];

  /** Every namespace's secrets on this server, the first one's first. */
  private readonly installations: InstallationSecrets[] = [];

  private constructor(
    readonly dir: string,
    private readonly admin: { seed: string; publicKey: string },
    readonly configFile: string,
    private child: ChildProcess | null,
    readonly port: number,
  ) {}

  /** The first namespace's secrets. */
  get secrets(): InstallationSecrets {
    return this.installations[0]!;
  }

  secretsOf(namespace: string): InstallationSecrets {
    const found = this.installations.find((s) => s.namespace === namespace);
    if (!found) throw new Error(`namespace ${namespace} has no users on this server`);
    return found;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** NATS_NKEY_DIR for the services of `namespace` (the first one by default): one `<principal>.nk` per process. */
  nkeyDir(namespace = this.secrets.namespace): string {
    return path.join(this.dir, namespace, SECRET_FILES.nkeyDir);
  }

  static async start(namespace: string, options: { port?: number } = {}): Promise<AuthenticatedNats> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-nats-'));
    const admin = createUserKey();
    writeFileSync(path.join(dir, 'admin.nk'), `${admin.seed}\n`, { mode: 0o600 });
    const configFile = path.join(dir, 'nats-server.conf');
    writeFileSync(
      configFile,
      [`jetstream { store_dir: ${JSON.stringify(path.join(dir, 'js'))} }`, `include ./${SECRET_FILES.natsAuthorization}`, ''].join('\n'),
    );
    const server = new AuthenticatedNats(dir, admin, configFile, null, options.port ?? 0);
    server.addSecrets(namespace, {});
    await server.spawn();
    return server;
  }

  /**
   * Another namespace's users on the same server (a restore into a second installation), applied
   * by a configuration reload. `ledgersOf`: namespaces whose erasure ledger its backup job may read.
   */
  async addNamespace(namespace: string, options: { ledgersOf?: string[] } = {}): Promise<void> {
    this.addSecrets(namespace, options);
    this.child?.kill('SIGHUP');
    await waitUntilSignIn(this.url, this.installations.at(-1)!.nkeys.users.seed);
  }

  private addSecrets(namespace: string, options: { ledgersOf?: string[] }): void {
    const secrets = generateSecrets(namespace, options);
    this.installations.push(secrets);
    writeSecrets(path.join(this.dir, namespace), secrets);
    writeServerAuthorization(path.join(this.dir, SECRET_FILES.natsAuthorization), this.installations, [{ name: 'test harness', nkey: this.admin.publicKey, permissions: 'all' }]);
  }

  /** Starts the server (again, on the same port and data after a stop). */
  async spawn(): Promise<void> {
    const child = spawn(NATS_SERVER_BIN, ['-c', this.configFile, '-a', '127.0.0.1', '-p', String(this.port || -1)], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    // A test file that fails before its cleanup must not leave its server running.
    const reap = () => child.kill('SIGKILL');
    process.once('exit', reap);
    child.once('exit', () => process.removeListener('exit', reap));
    let log = '';
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not start within 10 s: ${log}`)), 10_000);
      const onData = (d: Buffer) => {
        log += String(d);
        const m = /Listening for client connections on [^\s]*:(\d+)/.exec(log);
        if (m && /Server is ready/.test(log)) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited (${code}): ${log}`));
      });
    });
    (this as { port: number }).port = port;
    // Keep reading its output (a chatty server must never block on a full pipe), and keep what it
    // refused: a permissions violation by a service means the generated permissions miss something.
    const onLine = (d: Buffer) => {
      for (const line of String(d).split('\n')) {
        if (!/Violation/i.test(line)) continue;
        this.violations.push(line);
        if (process.env.PARLEY_TEST_NATS_VIOLATIONS_LOG) appendFileSync(process.env.PARLEY_TEST_NATS_VIOLATIONS_LOG, `${line}\n`);
      }
    };
    child.stdout!.on('data', onLine);
    child.stderr!.on('data', onLine);
  }

  /** The admin user's seed file (for connectBus in tests: `identity.nkeyFile`). */
  get adminSeedFile(): string {
    return path.join(this.dir, 'admin.nk');
  }

  /** An unrestricted connection, for what a test inspects or cleans up itself. */
  connectAdmin(name = 'test-admin'): Promise<NatsConnection> {
    return connect({ servers: this.url, name, authenticator: nkeyAuthenticator(new TextEncoder().encode(this.admin.seed)) });
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child && child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  }

  async destroy(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Resolves once a user with `seed` may sign in at `url`: how a test knows a configuration reload
 * (SIGHUP) that added users is done.
 */
export async function waitUntilSignIn(url: string, seed: string, timeoutMs = 5_000): Promise<void> {
  const key = new TextEncoder().encode(seed);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const nc = await connect({ servers: url, authenticator: nkeyAuthenticator(key), reconnect: false }).catch(() => null);
    if (nc) return nc.close();
    if (Date.now() > deadline) throw new Error(`nats-server at ${url} did not take the new users within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
