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
  /** Unset means no cache: every read goes to Postgres. */
  REDIS_URL: Type.Optional(Type.String()),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
  PARLEY_NAMESPACE: Type.String({ default: 'parley', pattern: '^[a-z][a-z0-9_-]{0,31}$' }),
  OTEL_EXPORTER_OTLP_ENDPOINT: Type.Optional(Type.String()),
  /** Seconds a service waits for in-flight work on SIGTERM before it exits anyway. */
  SHUTDOWN_TIMEOUT_SECONDS: Type.Number({ default: 10, minimum: 1 }),
  /** Ack wait of projector consumers, ms: how soon a crashed projector's events are redelivered. */
  PROJECTOR_ACK_WAIT_MS: Type.Number({ default: 30_000, minimum: 500 }),
  PROJECTOR_LINGER_MS: Type.Number({ default: 10, minimum: 0, maximum: 1_000 }),
  /** Retention of the data lifecycle table (design.md); they shape stream limits, so every service reads them. */
  MESSAGE_RETENTION_DAYS: Type.Number({ default: 365, minimum: 1 }),
  AUDIT_LOG_RETENTION_DAYS: Type.Number({ default: 90, minimum: 1 }),
  RESET_TOKEN_RETENTION_DAYS: Type.Number({ default: 7, minimum: 1 }),
  READ_RECEIPT_RETENTION_DAYS: Type.Number({ default: 180, minimum: 1 }),
} satisfies TProperties;

/** A development JWT secret, used only when none is configured; services warn loudly when they fall back to it. */
export const DEV_JWT_SECRET = 'parley-development-secret-do-not-use-in-production';

export const AuthEnv = {
  JWT_SECRET: Type.String({ default: DEV_JWT_SECRET, minLength: 32 }),
  /** Access-token lifetime in seconds: short, because logout must take effect quickly. */
  ACCESS_TOKEN_TTL: Type.Number({ default: 900, minimum: 30, maximum: 86400 }),
} satisfies TProperties;

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
  const withDefaults = Value.Default(schema, picked);
  const converted = Value.Convert(schema, withDefaults);
  const problems = [...Value.Errors(schema, converted)];
  if (problems.length > 0) {
    const lines = problems.map((p) => {
      const name = p.path.replace(/^\//, '') || '(root)';
      // Never echo the value itself: it may be a secret.
      return `  ${name}: ${p.message}`;
    });
    throw new ConfigError(`invalid configuration:\n${[...new Set(lines)].join('\n')}`);
  }
  return Object.freeze(converted as Static<TObject<P>>);
}
