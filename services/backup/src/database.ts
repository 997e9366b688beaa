import { spawn } from 'node:child_process';
import pg from 'pg';
import type { ChatHistory } from './manifest.js';

export interface SnapshotFigures {
  tables: Record<string, number>;
  chats: Record<string, ChatHistory>;
  checkpoints: Record<string, number>;
}

/** Schemas that belong to Postgres itself, never to Parley. */
const SYSTEM_SCHEMAS = "('pg_catalog', 'information_schema', 'pg_toast')";

/** Runs a command, failing with its stderr when it exits non-zero. */
export function run(command: string, args: string[], options: { env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', (error) => reject(new Error(`${command}: ${error.message}`)));
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} exited with ${code}: ${err.trim().slice(0, 2000)}`))));
  });
}

/**
 * How pg_dump and pg_restore are pointed at a database: `-d` with the URL less its password, and
 * the password as PGPASSWORD in the child's environment. A process's arguments are readable by
 * every user of the host (`ps`, /proc/<pid>/cmdline); its environment only by its own user.
 */
export function pgConnectionArgs(databaseUrl: string): { args: string[]; env: Record<string, string> } {
  let url: URL;
  try {
    url = new URL(databaseUrl);
  } catch {
    // A form libpq reads but WHATWG URLs do not (`postgres://u:pw@/db?host=/socket`, with no host
    // before the path, or `host=… password=…`): it was passed on whole, password and all, where
    // every user of the host could read it (found in review). Taken apart as libpq does instead.
    const split = /^postgres(ql)?:\/\//.test(databaseUrl) ? splitUriPassword(databaseUrl) : splitKeywordPassword(databaseUrl);
    return { args: ['-d', split.rest], env: split.password !== undefined ? { PGPASSWORD: split.password } : {} };
  }
  // libpq takes the password from the user info or from a `password` parameter.
  const password = url.password ? decodeURIComponent(url.password) : url.searchParams.get('password');
  url.password = '';
  url.searchParams.delete('password');
  return { args: ['-d', url.toString()], env: password ? { PGPASSWORD: password } : {} };
}

export class UnsafeDatabaseUrlError extends Error {
  override name = 'UnsafeDatabaseUrlError';
}

/**
 * A `postgres://` URI that WHATWG URLs refuse, less its password, which libpq takes from the user
 * info (`user:password@`, up to the first `@` before any `/`, as libpq reads it) or from a
 * `password` parameter; both percent-encoded.
 */
function splitUriPassword(uri: string): { rest: string; password?: string } {
  const scheme = /^postgres(ql)?:\/\//.exec(uri)![0];
  let rest = uri.slice(scheme.length);
  let password: string | undefined;
  const end = rest.search(/[@/]/);
  if (end >= 0 && rest[end] === '@') {
    const userinfo = rest.slice(0, end);
    const colon = userinfo.indexOf(':');
    if (colon >= 0) {
      password = decodeURIComponent(userinfo.slice(colon + 1));
      rest = `${userinfo.slice(0, colon)}${rest.slice(end)}`;
    }
  }
  const query = rest.indexOf('?');
  if (query >= 0) {
    const kept: string[] = [];
    for (const pair of rest.slice(query + 1).split('&')) {
      const eq = pair.indexOf('=');
      if (decodeURIComponent(eq >= 0 ? pair.slice(0, eq) : pair) === 'password') password = decodeURIComponent(pair.slice(eq + 1));
      else if (pair) kept.push(pair);
    }
    rest = `${rest.slice(0, query)}${kept.length > 0 ? `?${kept.join('&')}` : ''}`;
  }
  return { rest: `${scheme}${rest}`, ...(password !== undefined ? { password } : {}) };
}

/**
 * A libpq keyword/value string (`host=/tmp dbname=parley password='a b'`) less its `password`
 * entry. Values are bare (up to whitespace) or single-quoted, `\` escaping the next character. A
 * string that does not parse is refused when it mentions a password rather than passed on whole.
 */
function splitKeywordPassword(conninfo: string): { rest: string; password?: string } {
  const kept: string[] = [];
  let password: string | undefined;
  let i = 0;
  const space = /\s/;
  while (i < conninfo.length) {
    while (i < conninfo.length && space.test(conninfo[i]!)) i++;
    if (i >= conninfo.length) break;
    const start = i;
    while (i < conninfo.length && conninfo[i] !== '=' && !space.test(conninfo[i]!)) i++;
    const key = conninfo.slice(start, i);
    while (i < conninfo.length && space.test(conninfo[i]!)) i++;
    if (conninfo[i] !== '=' || !key) return unparsed(conninfo);
    i++;
    while (i < conninfo.length && space.test(conninfo[i]!)) i++;
    let value = '';
    if (conninfo[i] === "'") {
      i++;
      for (;;) {
        if (i >= conninfo.length) return unparsed(conninfo);
        const c = conninfo[i++]!;
        if (c === "'") break;
        if (c === '\\') {
          if (i >= conninfo.length) return unparsed(conninfo);
          value += conninfo[i++];
        } else value += c;
      }
    } else {
      while (i < conninfo.length && !space.test(conninfo[i]!)) {
        const c = conninfo[i++]!;
        if (c === '\\' && i < conninfo.length) value += conninfo[i++];
        else value += c;
      }
    }
    if (key === 'password') password = value;
    else kept.push(conninfo.slice(start, i));
  }
  return { rest: kept.join(' '), ...(password !== undefined ? { password } : {}) };
}

/** A string neither parser understands: passed on whole (libpq may), unless it mentions a password. */
function unparsed(conninfo: string): { rest: string } {
  if (/password/i.test(conninfo)) throw new UnsafeDatabaseUrlError('DATABASE_URL cannot be read as a URL or as libpq keyword=value pairs, and it names a password: pg_dump and pg_restore would show it in their arguments. Write it as postgres://user:password@host/db (or leave the password to PGPASSWORD or ~/.pgpass)');
  return { rest: conninfo };
}

/**
 * Dumps the database with `pg_dump -Fc` from an exported snapshot, and reads the manifest's
 * figures (row counts, per-chat history digests, projection checkpoints) inside the transaction
 * that exported it: the dump and the figures describe the very same instant.
 *
 * `afterSnapshot` runs once the snapshot exists (and while pg_dump runs): the caller reads the
 * stream states there, so every checkpoint in the dump is at or below its stream's exported end.
 */
export async function dumpDatabase(databaseUrl: string, file: string, afterSnapshot: () => Promise<void>): Promise<SnapshotFigures & { postgres: string; pgDump: string }> {
  const client = new pg.Client({ connectionString: databaseUrl, application_name: 'backup' });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const { rows } = await client.query<{ id: string; version: string }>('SELECT pg_export_snapshot() AS id, current_setting($1) AS version', ['server_version']);
    const snapshot = rows[0]!.id;
    const connection = pgConnectionArgs(databaseUrl);
    const dumping = run('pg_dump', ['-Fc', '--no-owner', '--no-privileges', `--snapshot=${snapshot}`, '-f', file, ...connection.args], { env: { ...process.env, ...connection.env } });
    // A failed dump must not leave the other promises dangling unobserved.
    dumping.catch(() => {});
    const [figures] = await Promise.all([snapshotFigures(client), afterSnapshot()]);
    await dumping;
    await client.query('COMMIT');
    const pgDump = (await run('pg_dump', ['--version'])).trim();
    return { ...figures, postgres: rows[0]!.version, pgDump };
  } finally {
    await client.end();
  }
}

/** The figures verify compares a restored database against (also used on the restored side). */
export async function snapshotFigures(db: pg.ClientBase): Promise<SnapshotFigures> {
  const { rows: tableRows } = await db.query<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables
      WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ${SYSTEM_SCHEMAS} ORDER BY 1, 2`,
  );
  const tables: Record<string, number> = {};
  for (const t of tableRows) {
    const q = `${pg.escapeIdentifier(t.schema)}.${pg.escapeIdentifier(t.name)}`;
    const { rows } = await db.query<{ n: string }>(`SELECT count(*) AS n FROM ${q}`);
    tables[`${t.schema}.${t.name}`] = Number(rows[0]!.n);
  }
  const chats: Record<string, ChatHistory> = {};
  if (tables['messages.messages'] !== undefined) {
    // The whole row as text: a restore that changed any column of any message changes the digest.
    const { rows } = await db.query<{ chat_id: string; n: number; digest: string }>(
      `SELECT chat_id, count(*)::int AS n, md5(string_agg(m::text, E'\\n' ORDER BY seq)) AS digest
         FROM messages.messages m GROUP BY chat_id ORDER BY chat_id`,
    );
    for (const r of rows) chats[r.chat_id] = { messages: r.n, digest: r.digest };
  }
  const checkpoints: Record<string, number> = {};
  for (const t of tableRows.filter((t) => t.name === 'projection_checkpoints')) {
    const { rows } = await db.query<{ projector: string; stream_seq: string }>(
      `SELECT projector, stream_seq FROM ${pg.escapeIdentifier(t.schema)}.projection_checkpoints ORDER BY projector`,
    );
    for (const r of rows) checkpoints[`${t.schema}.${r.projector}`] = Number(r.stream_seq);
  }
  return { tables, chats, checkpoints };
}

/** Parley's tables in a database ("schema.table"), to tell an empty restore target from a used one. */
export async function userTables(databaseUrl: string): Promise<string[]> {
  const client = new pg.Client({ connectionString: databaseUrl });
  try {
    await client.connect();
  } catch (error) {
    if ((error as { code?: string }).code === '3D000') return []; // the database does not exist yet
    throw error;
  }
  try {
    const { rows } = await client.query<{ t: string }>(
      `SELECT table_schema || '.' || table_name AS t FROM information_schema.tables
        WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ${SYSTEM_SCHEMAS} ORDER BY 1`,
    );
    return rows.map((r) => r.t);
  } finally {
    await client.end();
  }
}

/** Drops every non-system schema (restore --force into a used database). */
export async function dropUserSchemas(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ s: string }>(
      `SELECT nspname AS s FROM pg_namespace WHERE nspname NOT IN ${SYSTEM_SCHEMAS} AND nspname NOT LIKE 'pg_%' AND nspname <> 'public'`,
    );
    for (const r of rows) await client.query(`DROP SCHEMA ${pg.escapeIdentifier(r.s)} CASCADE`);
  } finally {
    await client.end();
  }
}

/** pg_restore of a custom-format dump into an (empty) database. */
export async function restoreDatabase(databaseUrl: string, file: string): Promise<void> {
  const connection = pgConnectionArgs(databaseUrl);
  await run('pg_restore', ['--no-owner', '--no-privileges', '--exit-on-error', '--single-transaction', ...connection.args, file], { env: { ...process.env, ...connection.env } });
}
