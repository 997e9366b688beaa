// What the one-off benchmarks (history, retention, backup) share: the services as child processes
// on a scratch namespace and database, a JSON API client, and removing it all afterwards.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts services (`dist/main.js`) with `env`; `onExit` hears of one that exits before stopAll(). */
export function serviceProcesses(env, onExit = () => {}) {
  const children = [];
  let stopping = false;
  return {
    start(name, extra = {}) {
      const child = spawn(process.execPath, [path.join(root, 'services', name, 'dist', 'main.js')], { env: { ...env, ...extra }, stdio: ['ignore', 'inherit', 'inherit'] });
      child.on('exit', (code) => stopping || onExit(name, code));
      children.push(child);
    },
    async stopAll() {
      stopping = true;
      for (const child of children) child.kill('SIGTERM');
      await sleep(1500);
      for (const child of children) child.kill('SIGKILL');
    },
  };
}

/** A JSON client of the gateway at `base`: `{status, body}` per call. */
export function apiClient(base) {
  return async (method, url, token, body) => {
    const r = await fetch(base + url, { method, headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: body ? JSON.stringify(body) : undefined });
    return { status: r.status, body: await r.json().catch(() => null) };
  };
}

/** Drops the scratch databases and every stream (and KV bucket) of the scratch namespaces. */
export async function dropScratch({ natsUrl, adminUrl = 'postgres://postgres@127.0.0.1:5432/postgres', databases, namespaces }) {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  for (const name of databases) await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.end();
  const nc = await connect({ servers: natsUrl });
  const jsm = await jetstreamManager(nc);
  for await (const name of jsm.streams.names()) {
    if (namespaces.some((n) => name.startsWith(`${n}_`) || name.startsWith(`KV_${n}_`))) await jsm.streams.delete(name);
  }
  await nc.close();
}
