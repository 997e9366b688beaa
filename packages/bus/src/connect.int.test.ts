import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createLogger } from '@parley/log';
import { AuthenticatedNats, freePort, natsServerAvailable } from '@parley/testing';
import { BusCredentialsError, compareVersions, connectBus, IncompatibleServerError, readNkeySeed, redactUrl } from './connect.js';

const log = createLogger({ service: 'test', level: 'silent' });
const NATS_SERVER = '/usr/sbin/nats-server';


describe('connectBus', () => {
  const children: ReturnType<typeof spawn>[] = [];
  afterAll(() => children.forEach((c) => c.kill('SIGKILL')));

  it('connects to the JetStream server of the environment', async () => {
    const bus = await connectBus({ url: process.env.NATS_URL ?? 'nats://127.0.0.1:4222', name: 'test', log });
    expect(compareVersions(bus.nc.info!.version, '2.9.0')).toBeGreaterThanOrEqual(0);
    await bus.nc.close();
  });

  // A second, throw-away nats-server started without -js: only where the binary is installed
  // (the development and CI machines); elsewhere this case is covered by the version check below.
  it.runIf(existsSync(NATS_SERVER))('refuses a server without JetStream, saying how to fix it', async () => {
    const port = await freePort();
    const child = spawn(NATS_SERVER, ['-a', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
    children.push(child);
    let error: unknown;
    for (let i = 0; i < 50; i++) {
      try {
        await connectBus({ url: `nats://127.0.0.1:${port}`, name: 'test', log });
        error = undefined;
        break;
      } catch (e) {
        error = e;
        if (e instanceof IncompatibleServerError) break;
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    expect(error).toBeInstanceOf(IncompatibleServerError);
    expect((error as Error).message).toMatch(/without JetStream.*-js/);
  });

  it('orders versions numerically', () => {
    expect(compareVersions('2.9.10', '2.9.0')).toBeGreaterThan(0);
    expect(compareVersions('2.10.0', '2.9.25')).toBeGreaterThan(0);
    expect(compareVersions('2.8.4', '2.9.0')).toBeLessThan(0);
    expect(compareVersions('2.9.0-beta.1', '2.9.0')).toBe(0);
  });

  it('never shows credentials from a URL', () => {
    expect(redactUrl('nats://user:hunter2@host:4222')).not.toContain('hunter2');
    expect(redactUrl('nats://user:hunter2@host:4222')).not.toContain('user');
  });
});

describe('connectBus and credentials', () => {
  const capture = () => {
    const lines: { level: string; msg: string }[] = [];
    const logger = createLogger({ service: 'test', level: 'info', destination: { write: (line: string) => void lines.push(JSON.parse(line)) } });
    return { lines, logger };
  };

  it('warns, once and loudly, when the bus accepts connections without credentials (the local default)', async () => {
    const { lines, logger } = capture();
    const bus = await connectBus({ url: 'nats://127.0.0.1:4222', name: 'test', log: logger });
    await bus.nc.close();
    expect(lines.filter((l) => /WITHOUT credentials/.test(l.msg))).toEqual([expect.objectContaining({ level: 'warn' })]);
  });

  it.runIf(natsServerAvailable())('signs in with its nkey on an authenticated server, without that warning', async () => {
    const server = await AuthenticatedNats.start('tconnect');
    try {
      const { lines, logger } = capture();
      const bus = await connectBus({ url: server.url, name: 'test', log: logger, identity: { principal: 'messages', namespace: 'tconnect', nkeyDir: server.nkeyDir() } });
      await bus.nc.close();
      expect(lines.filter((l) => /WITHOUT credentials/.test(l.msg))).toEqual([]);
      await expect(connectBus({ url: server.url, name: 'test', log: logger })).rejects.toThrow(/authorization/i);
    } finally {
      await server.destroy();
    }
  });

  it('refuses a missing or malformed seed file without echoing its content', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'parley-nkey-'));
    writeFileSync(path.join(dir, 'gateway.nk'), 'SUnot-a-seed-but-a-secret\n');
    expect(() => readNkeySeed({ principal: 'users', namespace: 't', nkeyDir: dir })).toThrow(BusCredentialsError);
    const malformed = (() => {
      try {
        readNkeySeed({ principal: 'gateway', namespace: 't', nkeyDir: dir });
      } catch (error) {
        return (error as Error).message;
      }
      return '';
    })();
    expect(malformed).toMatch(/does not hold a NATS user nkey seed/);
    expect(malformed).not.toContain('not-a-seed-but-a-secret');
    rmSync(dir, { recursive: true, force: true });
  });
});
