import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ManagedProcess } from './process.js';
import { freePort, sleep } from './servers.js';

const root = path.resolve(import.meta.dirname, '..', '..', '..');

export type ServiceName = 'users' | 'messages' | 'gateway';

/**
 * One compiled service (`services/<name>/dist/main.js`) as its own process, as operators run it, so
 * that a scenario can SIGKILL it. Ports are fixed at construction so a restart comes back on the
 * same address (clients reconnect to it).
 */
export class ServiceProcess extends ManagedProcess {
  /** Exits the scenario did not cause. */
  readonly unexpectedExits: string[] = [];
  private expectingExit = false;

  constructor(
    readonly name: ServiceName,
    label: string,
    private readonly env: Record<string, string>,
    readonly metricsPort: number,
    readonly port: number | undefined,
  ) {
    super(label);
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.port}/ws`;
  }

  /** Changes a setting for this and every later start (an operator's edited configuration). */
  configure(name: string, value: string): void {
    this.env[name] = value;
  }

  /** Starts the process; `ready` waits until its /readyz answers 200. */
  async start(extra: Record<string, string> = {}, { ready = true } = {}): Promise<void> {
    const env: Record<string, string> = { ...(process.env as Record<string, string>), ...this.env, ...extra, METRICS_PORT: String(this.metricsPort) };
    if (this.port !== undefined) env.PORT = String(this.port);
    const child = spawn(process.execPath, [path.join(root, 'services', this.name, 'dist', 'main.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.adopt(child);
    this.expectingExit = false;
    child.on('exit', (code, signal) => {
      if (!this.expectingExit && !extra.PARLEY_FAULT) this.unexpectedExits.push(`${this.label} exited (${signal ?? code})`);
    });
    if (ready) await this.waitReady();
  }

  async waitReady(timeoutMs = 60_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const status = await fetch(`http://127.0.0.1:${this.metricsPort}/readyz`)
        .then((r) => r.status)
        .catch(() => 0);
      if (status === 200) return;
      if (!this.running) throw new Error(`${this.label} exited while starting:\n${this.output.slice(-30).join('\n')}`);
      if (Date.now() > deadline) throw new Error(`${this.label} not ready within ${timeoutMs} ms:\n${this.output.slice(-30).join('\n')}`);
      await sleep(100);
    }
  }

  /** For a fault that makes the process kill itself: its exit is expected. */
  override waitExit(): Promise<unknown> {
    this.expectingExit = true;
    return super.waitExit();
  }

  override async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    this.expectingExit = true;
    await super.kill(signal);
  }

  async metrics(): Promise<string> {
    return (await fetch(`http://127.0.0.1:${this.metricsPort}/metrics`)).text();
  }
}

/** The env every service of one scenario shares: the private servers and one namespace. */
export function scenarioNamespace(): string {
  return `f${randomBytes(4).toString('hex')}`;
}

export function scenarioEnv(servers: Record<string, string>, extra: Record<string, string> = {}): Record<string, string> {
  const id = randomBytes(4).toString('hex');
  return {
    JWT_SECRET: `fault-secret-${id}-0123456789abcdefghijklmnopqrstuvwxyz`,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    PROJECTOR_ACK_WAIT_MS: '2000',
    ...servers,
    ...extra,
  };
}

export async function newService(name: ServiceName, env: Record<string, string>, label: string = name): Promise<ServiceProcess> {
  return new ServiceProcess(name, label, env, await freePort(), name === 'gateway' ? await freePort() : undefined);
}

/** users, messages and `gateways` gateways, started in that order (the gateway asks the others at once). */
export async function startServices(env: Record<string, string>, gateways = 1): Promise<{ users: ServiceProcess; messages: ServiceProcess; gateways: ServiceProcess[]; all: () => ServiceProcess[] }> {
  const users = await newService('users', env);
  const messages = await newService('messages', env);
  const gws: ServiceProcess[] = [];
  for (let i = 0; i < gateways; i++) gws.push(await newService('gateway', env, `gateway${i + 1}`));
  const all = () => [users, messages, ...gws];
  try {
    await Promise.all([users.start(), messages.start()]);
    await Promise.all(gws.map((g) => g.start()));
  } catch (error) {
    // One that failed to start must not leave the others running after the scenario gave up.
    await Promise.all(all().map((s) => s.kill('SIGKILL').catch(() => {})));
    throw error;
  }
  return { users, messages, gateways: gws, all };
}
