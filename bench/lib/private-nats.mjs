// A throwaway nats-server with JetStream, for the scripts that measure NATS itself
// (bench/purge-hold.mjs, bench/republish.mjs): its own port and store folder, removed by stop().
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect } from '@nats-io/transport-node';
import { freePort, sleep } from './system.mjs';

/** Starts `bin` (any nats-server version) on a free loopback port. */
export async function startPrivateNats(bin, name) {
  const version = execFileSync(bin, ['--version']).toString().trim();
  const dir = mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const port = await freePort();
  const server = spawn(bin, ['-js', '-sd', dir, '-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const url = `nats://127.0.0.1:${port}`;
  return {
    version,
    pid: server.pid,
    /** Its JetStream store folder (the block files are under jetstream/$G/streams/<name>/msgs). */
    dir,
    /** A connection, retried while the server starts. */
    async connect(options = {}) {
      for (let attempt = 0; ; attempt += 1) {
        try {
          return await connect({ servers: url, ...options });
        } catch (error) {
          if (attempt > 50) throw error;
          await sleep(100);
        }
      }
    },
    async stop() {
      const exited = server.exitCode !== null ? Promise.resolve() : new Promise((resolve) => server.once('exit', resolve));
      server.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Publishes `count` messages, message `n` (from 1) as `message(n)` = [subject, body], with a window
 * of 2,000 publishes in flight: the server's own ingest rate, not one round trip each.
 */
export async function seedStream(js, count, message) {
  const inflight = new Set();
  for (let n = 1; n <= count; n += 1) {
    const p = js.publish(...message(n)).then(() => inflight.delete(p));
    inflight.add(p);
    if (inflight.size >= 2_000) await Promise.race(inflight);
  }
  await Promise.all(inflight);
}

/** The q-quantile of an ascending array, or null when it is empty. */
export const quantile = (sorted, q) => (sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]);
