import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase } from '@parley/testing';
import { dumpDatabase, pgConnectionArgs, restoreDatabase } from './database.js';

const PASSWORD = 'dump-s3cret:/@x';

describe('pg_dump and pg_restore never get the password in their arguments', () => {
  it('pgConnectionArgs moves the password (user info or parameter) into PGPASSWORD', () => {
    const encoded = encodeURIComponent(PASSWORD);
    expect(pgConnectionArgs(`postgres://parley:${encoded}@db:5432/parley?sslmode=require`)).toEqual({
      args: ['-d', 'postgres://parley@db:5432/parley?sslmode=require'],
      env: { PGPASSWORD: PASSWORD },
    });
    expect(pgConnectionArgs(`postgres://parley@db/parley?password=${encoded}&sslmode=disable`)).toEqual({
      args: ['-d', 'postgres://parley@db/parley?sslmode=disable'],
      env: { PGPASSWORD: PASSWORD },
    });
    expect(pgConnectionArgs('postgres://parley@db/parley')).toEqual({ args: ['-d', 'postgres://parley@db/parley'], env: {} });
  });

  it('also for the forms libpq reads and WHATWG URLs refuse: a socket URL with no host, keyword=value', () => {
    // These were passed on whole, password included, as pg_dump's -d.
    const encoded = encodeURIComponent(PASSWORD);
    expect(pgConnectionArgs('postgres://u:pw@/db?host=/tmp')).toEqual({ args: ['-d', 'postgres://u@/db?host=/tmp'], env: { PGPASSWORD: 'pw' } });
    expect(pgConnectionArgs(`postgresql://u:${encoded}@/db?host=%2Fvar%2Frun%2Fpostgresql&sslmode=disable`)).toEqual({
      args: ['-d', 'postgresql://u@/db?host=%2Fvar%2Frun%2Fpostgresql&sslmode=disable'],
      env: { PGPASSWORD: PASSWORD },
    });
    expect(pgConnectionArgs(`postgres://u@/db?password=${encoded}&host=/tmp`)).toEqual({ args: ['-d', 'postgres://u@/db?host=/tmp'], env: { PGPASSWORD: PASSWORD } });
    expect(pgConnectionArgs("host=/tmp dbname=parley password = 'it\\'s \\\\ s3cret' user=u")).toEqual({ args: ['-d', 'host=/tmp dbname=parley user=u'], env: { PGPASSWORD: "it's \\ s3cret" } });
    expect(pgConnectionArgs('host=/tmp password=pw user=u')).toEqual({ args: ['-d', 'host=/tmp user=u'], env: { PGPASSWORD: 'pw' } });
    expect(pgConnectionArgs('host=/tmp dbname=parley')).toEqual({ args: ['-d', 'host=/tmp dbname=parley'], env: {} });
    // Not readable either way, and naming a password: refused, never passed on.
    expect(() => pgConnectionArgs("host=/tmp password='unterminated")).toThrow(/names a password/);
  });

  // The real binaries against the real server (trust: the password is not checked, only carried),
  // each behind a wrapper on the PATH that writes down the arguments and PGPASSWORD it was given.
  const dir = mkdtempSync(path.join(tmpdir(), 'parley-pg-args-'));
  const calls = path.join(dir, 'calls.log');
  const databases: { databaseUrl: string; drop(): Promise<void> }[] = [];
  const originalPath = process.env.PATH;
  beforeAll(() => {
    for (const tool of ['pg_dump', 'pg_restore']) {
      const real = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      const wrapper = path.join(dir, tool);
      writeFileSync(wrapper, `#!/bin/sh\nprintf '%s args: %s\\n%s env: %s\\n' ${tool} "$*" ${tool} "$PGPASSWORD" >> '${calls}'\nexec '${real}' "$@"\n`);
      chmodSync(wrapper, 0o755);
    }
    process.env.PATH = `${dir}:${originalPath}`;
  });
  afterAll(async () => {
    process.env.PATH = originalPath;
    for (const db of databases) await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('dumps and restores with the password in the environment only', async () => {
    const [source, target] = [await createTestDatabase(), await createTestDatabase()];
    databases.push(source, target);
    const withPassword = (url: string) => Object.assign(new URL(url), { password: encodeURIComponent(PASSWORD) }).toString();
    const db = new pg.Client({ connectionString: source.databaseUrl });
    await db.connect();
    await db.query(`CREATE SCHEMA s; CREATE TABLE s.t (v text); INSERT INTO s.t VALUES ('dumped')`).finally(() => db.end());

    const file = path.join(dir, 'database.dump');
    await dumpDatabase(withPassword(source.databaseUrl), file, async () => {});
    await restoreDatabase(withPassword(target.databaseUrl), file);

    const restored = new pg.Client({ connectionString: target.databaseUrl });
    await restored.connect();
    expect((await restored.query('SELECT v FROM s.t').finally(() => restored.end())).rows).toEqual([{ v: 'dumped' }]);
    const log = readFileSync(calls, 'utf8').split('\n');
    const args = log.filter((l) => / args: /.test(l) && l.includes(' -d '));
    expect(args.map((l) => l.split(' ')[0])).toEqual(['pg_dump', 'pg_restore']);
    for (const line of args) expect(line).not.toContain('s3cret');
    expect(log).toContain(`pg_dump env: ${PASSWORD}`);
    expect(log).toContain(`pg_restore env: ${PASSWORD}`);
  });
});
