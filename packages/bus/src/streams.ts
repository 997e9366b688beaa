import { DiscardPolicy, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from '@nats-io/jetstream';
import type { StreamDeclaration } from '@parley/contracts';
import type { Logger } from '@parley/log';

const NANOS_PER_SECOND = 1_000_000_000;

/**
 * The JetStream config for a declaration, using NATS 2.9 fields only (newer fields such as
 * per-message TTL or atomic batches would be rejected or silently ignored by a 2.9 server).
 */
export function streamConfig(decl: StreamDeclaration): Partial<StreamConfig> & { name: string } {
  return {
    name: decl.name,
    description: decl.description,
    subjects: decl.subjects,
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: decl.maxAgeSeconds * NANOS_PER_SECOND,
    max_msgs_per_subject: decl.maxMsgsPerSubject,
    duplicate_window: decl.duplicateWindowSeconds * NANOS_PER_SECOND,
    num_replicas: decl.replicas,
    // Direct get lets any replica answer "last message on this subject" cheaply (sequencing).
    allow_direct: true,
    // Retention removes individual expired messages and erased subjects.
    deny_delete: false,
    deny_purge: false,
    // No rollups: on NATS 2.9.10 one makes every consumer covering its subject skip other
    // subjects' events (docs/reliability.md); refused here so that no publisher can send one.
    allow_rollup_hdrs: false,
    ...(decl.republish ? { republish: { src: decl.republish.src, dest: decl.republish.dest } } : {}),
  };
}

/** A stream whose fixed settings differ from the declaration: only recreating it can fix that. */
export class StreamMismatchError extends Error {
  override name = 'StreamMismatchError';
}

/** The fields Parley owns; a difference in any of them is brought in line with the declaration. */
// num_replicas too: JetStream scales a clustered stream's replicas up or down in place.
const MANAGED: (keyof StreamConfig)[] = ['subjects', 'max_age', 'max_msgs_per_subject', 'duplicate_window', 'description', 'allow_direct', 'allow_rollup_hdrs', 'num_replicas'];

/**
 * Creates each declared stream, or updates it when its managed settings drifted. Safe to run from
 * every service at start and concurrently: creation races end in "already exists", then update.
 */
export async function ensureStreams(jsm: JetStreamManager, declarations: StreamDeclaration[], log: Logger): Promise<void> {
  for (const decl of declarations) {
    const wanted = streamConfig(decl);
    const existing = await jsm.streams.info(decl.name).catch((error: unknown) => {
      if (isNotFound(error)) return null;
      throw error;
    });
    if (!existing) {
      try {
        await jsm.streams.add(wanted);
        log.info({ stream: decl.name }, 'stream created');
        continue;
      } catch (error) {
        if (!/already in use|already exists/i.test((error as Error).message)) throw error;
      }
    }
    const current = existing ?? (await jsm.streams.info(decl.name));
    const republish = (current.config as { republish?: { src?: string; dest?: string } }).republish;
    if ((republish?.src ?? null) !== (wanted.republish?.src ?? null) || (republish?.dest ?? null) !== (wanted.republish?.dest ?? null)) {
      throw new StreamMismatchError(
        `stream ${decl.name} was created with another republish setting, which NATS cannot change in place: ` +
          'delete it (after backing up its messages) and start again',
      );
    }
    const drift = MANAGED.filter((k) => JSON.stringify(current.config[k] ?? null) !== JSON.stringify(wanted[k] ?? null));
    if (drift.length > 0) {
      await jsm.streams.update(decl.name, { ...current.config, ...pick(wanted, drift) });
      log.info({ stream: decl.name, fields: drift }, 'stream config updated');
    }
  }
}

/**
 * Waits until each named stream exists (their owner creates them), logging once per stream what
 * it waits for: a process that reads another's stream may start first, and must not create it
 * with its own idea of the settings, nor may its credentials allow that.
 */
export async function waitForStreams(jsm: JetStreamManager, names: { name: string; owner: string }[], log: Logger, options: { timeoutMs?: number } = {}): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (const { name, owner } of names) {
    let logged = false;
    for (;;) {
      const exists = await jsm.streams.info(name).then(
        () => true,
        (error: unknown) => {
          if (isNotFound(error)) return false;
          throw error;
        },
      );
      if (exists) break;
      if (!logged) log.info({ stream: name, owner }, `waiting for stream ${name} (the ${owner} service creates it)`);
      logged = true;
      if (Date.now() > deadline) throw new Error(`stream ${name} does not exist: start the ${owner} service (it creates the stream)`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

function pick<T extends object>(source: T, keys: (keyof T)[]): Partial<T> {
  return Object.fromEntries(keys.map((k) => [k, source[k]])) as Partial<T>;
}

export function isNotFound(error: unknown): boolean {
  const e = error as { code?: number; api_error?: { err_code?: number }; message?: string };
  return /not found/i.test(e?.message ?? '') || e?.api_error?.err_code === 10059 || e?.api_error?.err_code === 10014;
}
