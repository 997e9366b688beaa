import { readFileSync } from 'node:fs';
import path from 'node:path';
import { connect, nkeyAuthenticator, type NatsConnection } from '@nats-io/transport-node';
import { inboxPrefix, type Principal } from '@parley/contracts';
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream';
import type { Logger } from '@parley/log';
import type { RequestSigner } from './assertion.js';
import { answerRequestsWithoutThrowAwayErrors } from './request-patch.js';
import { writeOncePerTurn } from './write-patch.js';
import { whileJetStreamStarts } from './startup.js';

/** The oldest NATS server Parley runs on; its JetStream fields are the only ones the code uses. */
export const MIN_NATS_VERSION = '2.9.0';

export interface Bus {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
  /** The gateway's key for requests it makes for users (assertion.ts); no other process has one. */
  signer?: RequestSigner | undefined;
}

export class IncompatibleServerError extends Error {
  override name = 'IncompatibleServerError';
}

/** Who a process is on the bus, and where its nkey seed is (NATS_NKEY_FILE, or NATS_NKEY_DIR/<principal>.nk). */
export interface BusIdentity {
  principal: Principal;
  namespace: string;
  nkeyFile?: string | undefined;
  nkeyDir?: string | undefined;
}

export class BusCredentialsError extends Error {
  override name = 'BusCredentialsError';
}

/**
 * The seed of the process's nkey, or undefined when none is configured (an open bus, for local
 * development). Read from a file so that it never sits in the environment of every child process.
 */
export function readNkeySeed(identity: BusIdentity): Uint8Array | undefined {
  const file = identity.nkeyFile || (identity.nkeyDir ? path.join(identity.nkeyDir, `${identity.principal}.nk`) : undefined);
  if (!file) return undefined;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new BusCredentialsError(`cannot read the NATS nkey seed of ${identity.principal} at ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unreadable'}`);
  }
  const seed = text.trim();
  // A user seed is "SU" and 56 more base32 characters; never echo it in the error.
  if (!/^SU[A-Z2-7]{56}$/.test(seed)) throw new BusCredentialsError(`${file} does not hold a NATS user nkey seed (SU…)`);
  return new TextEncoder().encode(seed);
}

/**
 * Connects to NATS and checks the server before anything else runs: a server older than 2.9 or
 * without JetStream would fail later in confusing ways, so refuse now, saying why. With an
 * identity, the process signs in with its nkey and takes its own reply-subject prefix, which is
 * what the server's permissions for it expect (packages/contracts/src/permissions.ts).
 */
export async function connectBus(options: { url: string; name: string; log: Logger; identity?: BusIdentity | undefined }): Promise<Bus> {
  const seed = options.identity ? readNkeySeed(options.identity) : undefined;
  if (!answerRequestsWithoutThrowAwayErrors()) {
    options.log.info('this nats.js answers requests differently from the version request-patch.ts knows: left as it is');
  }
  if (!writeOncePerTurn()) {
    options.log.info('this nats.js queues its writes differently from the version write-patch.ts knows: left as it is');
  }
  const nc = await connect({
    // NATS_URL may list a cluster's servers, comma-separated: the client picks one and fails over.
    servers: options.url.split(',').map((u) => u.trim()).filter(Boolean),
    name: options.name,
    ...(seed ? { authenticator: nkeyAuthenticator(seed) } : {}),
    ...(options.identity ? { inboxPrefix: inboxPrefix(options.identity.namespace, options.identity.principal) } : {}),
    // Keep trying forever: a NATS restart must not kill a service (promise 1, docs/architecture.md#promises).
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    // nats.js otherwise builds an Error (a stack capture) for every request and publish, in case
    // it times out: 11 % of a gateway's CPU at 1,000 msg/s. A timeout still rejects with a
    // TimeoutError; it only lacks the caller's frames, which our own errors carry anyway.
    noAsyncTraces: true,
  });
  const info = nc.info;
  if (!info || compareVersions(info.version, MIN_NATS_VERSION) < 0) {
    await nc.close();
    throw new IncompatibleServerError(
      `NATS server ${info?.version ?? 'unknown'} at ${redactUrl(options.url)} is too old: Parley needs ${MIN_NATS_VERSION} or newer`,
    );
  }
  if (!info.jetstream) {
    await nc.close();
    throw new IncompatibleServerError(
      `NATS server at ${redactUrl(options.url)} runs without JetStream: start it with -js (JetStream is Parley's source of truth)`,
    );
  }
  if (!info.auth_required) {
    options.log.warn(
      { nats: redactUrl(options.url) },
      'NATS accepts connections WITHOUT credentials: anyone who reaches it can read every message and forge every event. ' +
        'Fine for local development; in production give every process its nkey (npm run secrets, docs/security.md)',
    );
  }
  (async () => {
    for await (const status of nc.status()) {
      if (status.type === 'disconnect' || status.type === 'reconnect') {
        options.log.warn({ nats: status.type }, `nats ${status.type}`);
      } else if (status.type === 'error') {
        // A permissions violation means the server configuration and this code disagree: loud.
        options.log.error({ err: { name: status.error.name, message: status.error.message } }, 'nats refused an operation');
      }
    }
  })().catch(() => {});
  const jsm = await whileJetStreamStarts('checking the JetStream API', () => jetstreamManager(nc), options.log);
  return { nc, js: jetstream(nc), jsm };
}

export function compareVersions(a: string, b: string): number {
  const pa = a.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split(/[.-]/).map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** URLs may carry credentials; they never reach a log line or an error message. */
export function redactUrl(url: string): string {
  if (url.includes(',')) return url.split(',').map((u) => redactUrl(u.trim())).join(',');
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    if (u.username) u.username = '***';
    return u.toString();
  } catch {
    return '(unparseable url)';
  }
}
