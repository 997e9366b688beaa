import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { freePort, NATS_SERVER_BIN } from '@parley/testing';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { connectBus, type Bus } from './connect.js';
import { JetStreamUnavailableError, whileJetStreamStarts } from './startup.js';
import { ensureStreams } from './streams.js';


/**
 * A 3-node cluster started one node at a time: with one node up JetStream has no meta leader (it
 * needs two of three), so its API answers nothing, as in a cluster that is still forming.
 */
describe('a process started before its NATS cluster has formed', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-startup-'));
  const nodes: { port: number; route: number; child?: ChildProcess }[] = [];
  const lines: string[] = [];
  const log = createLogger({ service: 't', level: 'info', destination: { write: (line: string) => lines.push(line) } });
  let bus: Bus | undefined;

  beforeAll(async () => {
    for (let i = 0; i < 3; i++) nodes.push({ port: await freePort(), route: await freePort() });
  });
  afterAll(async () => {
    await bus?.nc.close();
    for (const node of nodes) node.child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  function startNode(i: number): void {
    const node = nodes[i]!;
    const config = path.join(dir, `n${i}.conf`);
    writeFileSync(
      config,
      `server_name: n${i}
jetstream { store_dir: "${path.join(dir, `n${i}`)}" }
cluster { name: startup, listen: "127.0.0.1:${node.route}", routes: [${nodes.map((n) => `"nats://127.0.0.1:${n.route}"`).join(', ')}] }
`,
    );
    node.child = spawn(NATS_SERVER_BIN, ['-c', config, '-a', '127.0.0.1', '-p', String(node.port)], { stdio: 'ignore' });
  }

  /** Connects once the first node listens (refused while it opens its port). */
  async function whenListening<T>(connectTo: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await connectTo();
      } catch (error) {
        if (!/connection refused|ECONNREFUSED/i.test(`${(error as { code?: string }).code} ${(error as Error).message}`) || attempt > 50) throw error;
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  }

  it('gives up after its wait, naming the step, while the cluster has no JetStream leader', async () => {
    startNode(0);
    const nc = await whenListening(() => connect({ servers: `nats://127.0.0.1:${nodes[0]!.port}` }));
    try {
      const error = await whileJetStreamStarts('checking the JetStream API', () => jetstreamManager(nc, { timeout: 500 }), log, { waitMs: 3_000, retryMs: 250 }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(JetStreamUnavailableError);
      expect((error as Error).message).toMatch(/^JetStream did not answer within 3 s while checking the JetStream API/);
    } finally {
      await nc.close();
    }
  });

  it('waits for JetStream, saying so once, and goes on when the cluster has formed', async () => {
    lines.splice(0);
    const started = (async () => {
      bus = await whenListening(() => connectBus({ url: `nats://127.0.0.1:${nodes[0]!.port}`, name: 'startup-test', log }));
      await whileJetStreamStarts(
        'creating its streams',
        () => ensureStreams(bus!.jsm, [{ name: 'startup', description: 't', subjects: ['startup.>'], maxAgeSeconds: 0, maxMsgsPerSubject: -1, duplicateWindowSeconds: 120, replicas: 3 }], log),
        log,
      );
    })();
    // The process is waiting (its warning is the positive signal) before the other nodes start.
    const waiting = () => lines.filter((l) => l.includes('"step":"checking the JetStream API"'));
    await expect.poll(() => waiting().length, { timeout: 30_000 }).toBeGreaterThan(0);
    startNode(1);
    startNode(2);
    await started;
    const info = await bus!.jsm.streams.info('startup');
    expect(info.config.num_replicas).toBe(3);
    // Once per step, not once per retry.
    expect(waiting()).toHaveLength(1);
  }, 150_000);
});
