import { Type, type Static, type TObject, type TProperties } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';

/**
 * Environment parsing for every service: one TypeBox schema per service, parsed once at start,
 * frozen. Bad configuration fails fast with every problem listed, naming the variable.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Settings every service reads, with api.md's defaults. */
export const CommonEnv = {
  NATS_URL: Type.String({ default: 'nats://127.0.0.1:4222' }),
  DATABASE_URL: Type.String({ default: 'postgres://postgres@127.0.0.1:5432/parley' }),
  /**
   * PostgreSQL connections one process may hold (users, messages, retention, backup's children).
   * The budget: (users + messages replicas) × this + jobs must stay under the server's
   * max_connections (100 by default) less its reserved ones (operations.md, Settings).
   */
  DATABASE_POOL_SIZE: Type.Integer({ default: 10, minimum: 1, maximum: 200 }),
  /** Unset means no cache: every read goes to Postgres. */
  REDIS_URL: Type.Optional(Type.String()),
  /** Redis AUTH password (or the ACL user's, with REDIS_USERNAME); a Secret, apart from the URL. */
  REDIS_PASSWORD: Type.Optional(Type.String()),
  REDIS_USERNAME: Type.Optional(Type.String()),
  /** PEM file of the CA that signed Redis's certificate, for a `rediss://` URL with a private CA. */
  REDIS_CA_FILE: Type.Optional(Type.String()),
  /** AES-256-GCM key sealing every cache value (users and messages); a development key only when local. */
  CACHE_KEY: Type.Optional(Type.String({ minLength: 43, maxLength: 43 })),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  PARLEY_NAMESPACE: Type.String({ default: 'parley', pattern: '^[a-z][a-z0-9_-]{0,31}$' }),
  /** File holding this process's NATS user nkey seed (SU…); unset: connect without credentials. */
  NATS_NKEY_FILE: Type.Optional(Type.String()),
  /** Folder of `<principal>.nk` seed files (npm run secrets), for hosts that run several processes. */
  NATS_NKEY_DIR: Type.Optional(Type.String()),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String()),
  /** Seconds a service waits for in-flight work on SIGTERM before it exits anyway. */
  SHUTDOWN_TIMEOUT_SECONDS: Type.Number({ default: 10, minimum: 1 }),
  /** Ack wait of projector consumers, ms: how soon a crashed projector's events are redelivered. */
  PROJECTOR_ACK_WAIT_MS: Type.Number({ default: 30_000, minimum: 500 }),
  PROJECTOR_LINGER_MS: Type.Number({ default: 10, minimum: 0, maximum: 1_000 }),
  // Whether a projector's batch waits for its WAL flush at commit (issue 21; why off is safe: decisions.md).
  PROJECTOR_SYNCHRONOUS_COMMIT: Type.Union([Type.Literal('on'), Type.Literal('off')], { default: 'off' }),
  /** Retention of the data lifecycle table (docs/retention.md#the-policy); they shape stream limits, so every service reads them. */
  MESSAGE_RETENTION_DAYS: Type.Number({ default: 365, minimum: 1 }),
  AUDIT_LOG_RETENTION_DAYS: Type.Number({ default: 90, minimum: 1 }),
  RESET_TOKEN_RETENTION_DAYS: Type.Number({ default: 7, minimum: 1 }),
  READ_RECEIPT_RETENTION_DAYS: Type.Number({ default: 180, minimum: 1 }),
  /** JetStream copies of every stream and KV bucket: 1 on a single server, 3 in a 3-node cluster. */
  STREAM_REPLICAS: Type.Integer({ default: 1, minimum: 1, maximum: 5 }),
} satisfies TProperties;

/**
 * Development keys, published here and so known to everyone: used only when the setting is unset
 * and the process is clearly local (isClearlyLocal), with a loud warning at start
 * (developmentKeysInUse). Anywhere else an unset key is a configuration error.
 */
export const DEV_JWT_SECRET = 'parley-development-secret-do-not-use-in-production';
export const DEV_GATEWAY_SIGNING_KEY = 'H4d2lvzHpEyFLzzatNTc0DYq_1TZa3vLYeVPy1Ywuio';
export const DEV_GATEWAY_PUBLIC_KEY = 'Q3FA3L6DeOQFgppN-8yY7hJpgnIdICVpP5QkZTMNYmg';
export const DEV_CACHE_KEY = '3p0maFZdGdh9UoGVSVRHtgvYVmHFAMfMJ8HqFyCibQw';
const DEVELOPMENT_KEYS: Record<string, string> = {
  CACHE_KEY: DEV_CACHE_KEY,
  JWT_SECRET: DEV_JWT_SECRET,
  GATEWAY_SIGNING_KEY: DEV_GATEWAY_SIGNING_KEY,
  GATEWAY_PUBLIC_KEY: DEV_GATEWAY_PUBLIC_KEY,
};

export const AuthEnv = {
  /** HS256 key of access tokens (users signs, gateway verifies); a development key only when local. */
  JWT_SECRET: Type.String({ minLength: 32 }),
  /** Access-token lifetime in seconds: short, because logout must take effect quickly. */
  ACCESS_TOKEN_TTL: Type.Number({ default: 900, minimum: 30, maximum: 86400 }),
} satisfies TProperties;

/** The gateway's Ed25519 key for requests it makes for users (base64url seed; npm run secrets). */
export const GatewaySigningEnv = {
  GATEWAY_SIGNING_KEY: Type.String({ minLength: 43, maxLength: 43 }),
} satisfies TProperties;

/** The public half, with which users and messages verify those requests. */
export const GatewayVerifyEnv = {
  GATEWAY_PUBLIC_KEY: Type.String({ minLength: 43, maxLength: 43 }),
} satisfies TProperties;

const LOOPBACK = /^(localhost|127(\.\d{1,3}){3}|\[?::1\]?)$/i;

/**
 * A development machine: not NODE_ENV=production, and every server it talks to is on this host.
 * Only then may a development key stand in for an unset secret.
 */
export function isClearlyLocal(source: Record<string, string | undefined>): boolean {
  if (source.NODE_ENV === 'production') return false;
  // NATS_URL may list a cluster's servers, comma-separated: each must be local.
  const urls = ['NATS_URL', 'DATABASE_URL', 'REDIS_URL']
    .flatMap((k) => (source[k] ?? '').split(','))
    .map((v) => v.trim())
    .filter(Boolean);
  return urls.every((url) => {
    try {
      const host = new URL(url).hostname;
      return host === '' || LOOPBACK.test(host);
    } catch {
      return false;
    }
  });
}

/** The settings of `config` that hold a published development key (for the start-up warning). */
export function developmentKeysInUse(config: Record<string, unknown>): string[] {
  return Object.keys(DEVELOPMENT_KEYS).filter((k) => config[k] === DEVELOPMENT_KEYS[k]);
}

export function loadEnv<P extends TProperties>(
  properties: P,
  source: Record<string, string | undefined> = process.env,
): Readonly<Static<TObject<P>>> {
  const schema = Type.Object(properties);
  const picked: Record<string, unknown> = {};
  for (const key of Object.keys(properties)) {
    const raw = source[key];
    // An empty variable means "not set": `FOO= npm start` should not turn into an empty URL.
    if (raw !== undefined && raw !== '') picked[key] = raw;
  }
  const local = isClearlyLocal(source);
  for (const key of Object.keys(properties)) {
    const devKey = DEVELOPMENT_KEYS[key];
    if (devKey !== undefined && picked[key] === undefined && local) picked[key] = devKey;
  }
  const withDefaults = Value.Default(schema, picked);
  const converted = Value.Convert(schema, withDefaults);
  const problems = [...Value.Errors(schema, converted)];
  if (problems.length > 0) {
    const lines = problems.map((p) => {
      const name = p.path.replace(/^\//, '') || '(root)';
      if (DEVELOPMENT_KEYS[name] !== undefined && picked[name] === undefined) {
        return `  ${name}: required (this process is not local, so no development key stands in; generate one with npm run secrets)`;
      }
      // Never echo the value itself: it may be a secret.
      return `  ${name}: ${p.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${[...new Set(lines)].join('\n')}`);
  }
  return Object.freeze(converted as Static<TObject<P>>);
}

export { applyEnvFile, EnvFileError, withoutEnvFileArgs } from './env-file.js';
