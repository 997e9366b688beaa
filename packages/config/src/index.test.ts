import { describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import { AuthEnv, CommonEnv, ConfigError, DEV_CACHE_KEY, DEV_JWT_SECRET, developmentKeysInUse, GatewaySigningEnv, GatewayVerifyEnv, isClearlyLocal, loadEnv } from './index.js';

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('loadEnv', () => {
  it('applies api.md\'s defaults when nothing is set', () => {
    const env = loadEnv({ ...CommonEnv, ...AuthEnv }, {});
    expect(env).toEqual({
      NATS_URL: 'nats://127.0.0.1:4222',
      DATABASE_URL: 'postgres://postgres@127.0.0.1:5432/parley',
      LOG_LEVEL: 'info',
      PARLEY_NAMESPACE: 'parley',
      SHUTDOWN_TIMEOUT_SECONDS: 10,
      PROJECTOR_ACK_WAIT_MS: 30_000,
      PROJECTOR_LINGER_MS: 10,
      PROJECTOR_SYNCHRONOUS_COMMIT: 'off',
      // docs/retention.md's data lifecycle table.
      MESSAGE_RETENTION_DAYS: 365,
      AUDIT_LOG_RETENTION_DAYS: 90,
      RESET_TOKEN_RETENTION_DAYS: 7,
      READ_RECEIPT_RETENTION_DAYS: 180,
      // One copy of each stream: a single NATS server (operations.md, A NATS cluster).
      STREAM_REPLICAS: 1,
      DATABASE_POOL_SIZE: 10,
      JWT_SECRET: DEV_JWT_SECRET,
      CACHE_KEY: DEV_CACHE_KEY,
      ACCESS_TOKEN_TTL: 900,
    });
    expect('REDIS_URL' in env).toBe(false);
  });

  it('takes set values over defaults and converts numeric strings to numbers', () => {
    const env = loadEnv(CommonEnv, {
      NATS_URL: 'nats://nats:4222',
      REDIS_URL: 'redis://cache:6379',
      LOG_LEVEL: 'debug',
      SHUTDOWN_TIMEOUT_SECONDS: '25',
      PROJECTOR_ACK_WAIT_MS: '1500',
    });
    expect(env.NATS_URL).toBe('nats://nats:4222');
    expect(env.REDIS_URL).toBe('redis://cache:6379');
    expect(env.LOG_LEVEL).toBe('debug');
    expect(env.SHUTDOWN_TIMEOUT_SECONDS).toBe(25);
    expect(env.PROJECTOR_ACK_WAIT_MS).toBe(1500);
  });

  it('ignores variables outside the schema', () => {
    const env = loadEnv(CommonEnv, { HOME: '/root', PATH: '/bin' });
    expect('HOME' in env).toBe(false);
    expect('PATH' in env).toBe(false);
  });

  it('treats an empty variable as unset: the default applies and an optional stays absent', () => {
    const env = loadEnv(CommonEnv, { DATABASE_URL: '', REDIS_URL: '', SHUTDOWN_TIMEOUT_SECONDS: '' });
    expect(env.DATABASE_URL).toBe('postgres://postgres@127.0.0.1:5432/parley');
    expect(env.REDIS_URL).toBeUndefined();
    expect(env.SHUTDOWN_TIMEOUT_SECONDS).toBe(10);
  });

  it('names every bad variable in one ConfigError', () => {
    const error = configError(() =>
      loadEnv(CommonEnv, {
        SHUTDOWN_TIMEOUT_SECONDS: 'soon',
        PROJECTOR_ACK_WAIT_MS: '10',
        LOG_LEVEL: 'loud',
        PARLEY_NAMESPACE: 'Bad.Namespace',
      }),
    );
    expect(error.name).toBe('ConfigError');
    expect(error.message).toMatch(/^invalid configuration:/);
    for (const name of ['SHUTDOWN_TIMEOUT_SECONDS', 'PROJECTOR_ACK_WAIT_MS', 'LOG_LEVEL', 'PARLEY_NAMESPACE']) {
      expect(error.message).toContain(`  ${name}:`);
    }
    expect(error.message).not.toContain('NATS_URL');
  });

  it('never echoes the bad value, which may be a secret', () => {
    const secret = 'sk_live_Zq8v1Xr9Tb';
    const error = configError(() => loadEnv(AuthEnv, { JWT_SECRET: secret, ACCESS_TOKEN_TTL: `${secret}-ttl` }));
    expect(error.message).toContain('JWT_SECRET');
    expect(error.message).toContain('ACCESS_TOKEN_TTL');
    expect(error.message).not.toContain(secret);
    expect(error.message).not.toContain('Zq8v1');
  });

  it('enforces bounds after conversion', () => {
    expect(() => loadEnv(AuthEnv, { ACCESS_TOKEN_TTL: '29' })).toThrow(/ACCESS_TOKEN_TTL/);
    expect(() => loadEnv(AuthEnv, { ACCESS_TOKEN_TTL: '86401' })).toThrow(/ACCESS_TOKEN_TTL/);
    // Stream copies: 1 to 5.
    expect(loadEnv(CommonEnv, { STREAM_REPLICAS: '3' }).STREAM_REPLICAS).toBe(3);
    for (const bad of ['0', '6']) expect(() => loadEnv(CommonEnv, { STREAM_REPLICAS: bad })).toThrow(/STREAM_REPLICAS/);
    expect(loadEnv(AuthEnv, { ACCESS_TOKEN_TTL: '30' }).ACCESS_TOKEN_TTL).toBe(30);
  });

  it('reports a missing required variable that has no default', () => {
    const error = configError(() => loadEnv({ API_KEY: Type.String() }, {}));
    expect(error.message).toContain('API_KEY');
  });

  it('returns a frozen object', () => {
    const env = loadEnv(CommonEnv, {});
    expect(Object.isFrozen(env)).toBe(true);
    expect(() => {
      (env as { NATS_URL: string }).NATS_URL = 'nats://elsewhere:4222';
    }).toThrow(TypeError);
    expect(env.NATS_URL).toBe('nats://127.0.0.1:4222');
  });

  it('reads process.env when no source is given', () => {
    const previous = process.env.PARLEY_NAMESPACE;
    process.env.PARLEY_NAMESPACE = 'fromprocess';
    try {
      expect(loadEnv(CommonEnv).PARLEY_NAMESPACE).toBe('fromprocess');
    } finally {
      if (previous === undefined) delete process.env.PARLEY_NAMESPACE;
      else process.env.PARLEY_NAMESPACE = previous;
    }
  });
});

describe('development keys', () => {
  it('stand in for unset secrets only on a local machine, and are reported', () => {
    const env = loadEnv({ ...CommonEnv, ...AuthEnv, ...GatewaySigningEnv }, {});
    expect(env.JWT_SECRET).toBe(DEV_JWT_SECRET);
    expect(developmentKeysInUse(env)).toEqual(['CACHE_KEY', 'JWT_SECRET', 'GATEWAY_SIGNING_KEY']);
    // Not local: no cache key stands in (a service with REDIS_URL then refuses to start, runtime).
    expect(loadEnv(CommonEnv, { REDIS_URL: 'redis://10.0.0.5:6379' }).CACHE_KEY).toBeUndefined();
    expect(developmentKeysInUse(loadEnv({ ...CommonEnv, ...AuthEnv }, { JWT_SECRET: 'x'.repeat(40), CACHE_KEY: 'k'.repeat(43) }))).toEqual([]);
  });

  it('are refused in production or with any server off this machine, naming the setting and not a value', () => {
    for (const source of [{ NODE_ENV: 'production' }, { NATS_URL: 'nats://nats:4222' }, { DATABASE_URL: 'postgres://db.internal/parley' }, { REDIS_URL: 'redis://10.0.0.5:6379' }]) {
      const error = configError(() => loadEnv({ ...CommonEnv, ...AuthEnv, ...GatewayVerifyEnv }, source));
      expect(error.message).toMatch(/JWT_SECRET: required/);
      expect(error.message).toMatch(/GATEWAY_PUBLIC_KEY: required/);
    }
    expect(isClearlyLocal({ NATS_URL: 'nats://localhost:4222', DATABASE_URL: 'postgres://postgres@127.0.0.1/x', REDIS_URL: 'redis://[::1]:6379' })).toBe(true);
    // A local three-node cluster (the fault suite's) is local; one remote server among them is not.
    expect(isClearlyLocal({ NATS_URL: 'nats://127.0.0.1:4301,nats://127.0.0.1:4302,nats://127.0.0.1:4303' })).toBe(true);
    expect(isClearlyLocal({ NATS_URL: 'nats://127.0.0.1:4301,nats://nats-2.internal:4222' })).toBe(false);
  });
});
