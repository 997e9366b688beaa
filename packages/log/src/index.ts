import { isSpanContextValid, trace } from '@opentelemetry/api';
import { pino, type DestinationStream, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths that must never reach a log line. pino's redaction runs on every serialisation, so a
 * careless `log.info({ body: req.body })` still cannot leak a password or token.
 * Message bodies are redacted too: the promises forbid them (docs/architecture.md#promises).
 */
export const REDACT_PATHS = [
  'password',
  'newPassword',
  'passwordHash',
  'token',
  'accessToken',
  'refreshToken',
  'authorization',
  'headers.authorization',
  'req.headers.authorization',
  'body.password',
  'body.newPassword',
  'body.token',
  'body.refreshToken',
  'body.body',
  '*.password',
  '*.newPassword',
  '*.passwordHash',
  '*.token',
  '*.accessToken',
  '*.refreshToken',
  '*.authorization',
];

export interface LogOptions {
  service: string;
  level?: string;
  /** Where to write; tests pass a stream to assert on the output. */
  destination?: DestinationStream;
}

export function createLogger(options: LogOptions): Logger {
  const config: LoggerOptions = {
    level: options.level ?? 'info',
    base: { service: options.service },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label) => ({ level: label }) },
    // Every line written inside a trace names it, so logs and traces (Tempo) join on trace_id.
    mixin() {
      const context = trace.getActiveSpan()?.spanContext();
      return context && isSpanContextValid(context) ? { trace_id: context.traceId, span_id: context.spanId } : {};
    },
  };
  return options.destination ? pino(config, options.destination) : pino(config);
}
