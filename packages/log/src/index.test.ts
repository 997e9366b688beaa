import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger, type Logger } from './index.js';

/** A logger writing into an array, one parsed JSON object per line. */
function capture(level?: string): { log: Logger; lines: () => Record<string, any>[]; raw: () => string } {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const log = createLogger({ service: 'users', destination, ...(level ? { level } : {}) });
  const raw = () => chunks.join('');
  return {
    log,
    raw,
    lines: () =>
      raw()
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, any>),
  };
}

describe('createLogger', () => {
  it('writes one JSON object per line with the level label, service, ISO time and message', () => {
    const { log, lines } = capture();
    log.info({ requestId: 'r-1' }, 'hello');
    log.warn('careful');
    const [first, second] = lines();
    expect(first).toMatchObject({ level: 'info', service: 'users', requestId: 'r-1', msg: 'hello' });
    expect(new Date(first!.time).toISOString()).toBe(first!.time);
    expect(second).toMatchObject({ level: 'warn', service: 'users', msg: 'careful' });
  });

  it('defaults to info and honours a configured level', () => {
    const atInfo = capture();
    atInfo.log.debug('hidden');
    atInfo.log.info('shown');
    expect(atInfo.lines().map((l) => l.msg)).toEqual(['shown']);

    const atDebug = capture('debug');
    atDebug.log.debug('now shown');
    expect(atDebug.lines()).toEqual([expect.objectContaining({ level: 'debug', msg: 'now shown' })]);

    const silent = capture('silent');
    silent.log.error('nothing');
    expect(silent.raw()).toBe('');
  });

  it('redacts credentials at the top level', () => {
    const { log, lines, raw } = capture();
    log.info(
      {
        password: 'pw-top-secret',
        token: 'tok-secret',
        accessToken: 'access-secret',
        refreshToken: 'refresh-secret',
        authorization: 'Bearer bearer-secret',
        username: 'alice',
      },
      'login',
    );
    const [line] = lines();
    expect(line).toMatchObject({
      password: '[redacted]',
      token: '[redacted]',
      accessToken: '[redacted]',
      refreshToken: '[redacted]',
      authorization: '[redacted]',
      username: 'alice',
    });
    for (const secret of ['pw-top-secret', 'tok-secret', 'access-secret', 'refresh-secret', 'bearer-secret']) {
      expect(raw()).not.toContain(secret);
    }
  });

  it('redacts credentials one level down and request authorization headers', () => {
    const { log, lines, raw } = capture();
    log.info(
      {
        user: { name: 'alice', password: 'nested-pw' },
        session: { accessToken: 'nested-access', refreshToken: 'nested-refresh' },
        req: { headers: { authorization: 'Bearer req-header-secret', accept: 'application/json' } },
        headers: { authorization: 'Bearer header-secret' },
      },
      'nested',
    );
    const [line] = lines();
    expect(line!.user).toEqual({ name: 'alice', password: '[redacted]' });
    expect(line!.session).toEqual({ accessToken: '[redacted]', refreshToken: '[redacted]' });
    expect(line!.req.headers).toEqual({ authorization: '[redacted]', accept: 'application/json' });
    expect(line!.headers.authorization).toBe('[redacted]');
    for (const secret of ['nested-pw', 'nested-access', 'nested-refresh', 'req-header-secret', 'header-secret']) {
      expect(raw()).not.toContain(secret);
    }
  });

  it('redacts message bodies and passwords inside a logged request body', () => {
    const { log, lines, raw } = capture();
    log.info(
      { body: { clientMsgId: 'k-1', body: 'meet me at the old mill at 9', password: 'body-pw', newPassword: 'body-new-pw' } },
      'request',
    );
    const [line] = lines();
    expect(line!.body).toEqual({ clientMsgId: 'k-1', body: '[redacted]', password: '[redacted]', newPassword: '[redacted]' });
    expect(raw()).not.toContain('old mill');
    expect(raw()).not.toContain('body-pw');
  });

  it('does not redact the logged object itself', () => {
    const { log } = capture();
    const payload = { password: 'still-here' };
    log.info(payload, 'x');
    expect(payload.password).toBe('still-here');
  });

  it('carries the service into child loggers', () => {
    const { log, lines } = capture();
    log.child({ component: 'projector' }).info({ token: 'child-secret' }, 'from child');
    expect(lines()[0]).toMatchObject({ service: 'users', component: 'projector', token: '[redacted]', msg: 'from child' });
  });
});
