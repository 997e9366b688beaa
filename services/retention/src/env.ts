import { Type } from '@sinclair/typebox';
import { CommonEnv, loadEnv } from '@parley/config';

export const RetentionEnv = {
  ...CommonEnv,
  /** Unused by the one-shot pass (it exposes no endpoint); kept so the common settings validate. */
  METRICS_PORT: Type.Number({ default: 9093 }),
  /** Most messages one MessagesExpired event covers: bounds the projection's transaction. */
  RETENTION_BATCH_MESSAGES: Type.Number({ default: 5000, minimum: 1 }),
  /** How long a pass waits for the projectors to apply its deletion events before it fails. */
  RETENTION_PROJECTION_TIMEOUT_SECONDS: Type.Number({ default: 600, minimum: 1 }),
  /**
   * Stream deletions in flight at once (each is one JetStream API request). JetStream applies a
   * stream's deletes one at a time, so more in flight adds no speed, only queueing in front of
   * live publishes (docs/performance.md#retention).
   */
  RETENTION_DELETE_CONCURRENCY: Type.Number({ default: 4, minimum: 1, maximum: 1024 }),
  /**
   * Stream sequences per purge request when the pass drops the chats stream's expired part (0: one
   * request). A purge holds the stream, so live publishes wait behind it: steps bound that wait.
   * 'auto' chooses by the server's version: one request on NATS 2.9, where a step costs nearly as
   * much as the whole purge, steps of 20,000 from 2.10 on (purgeStepFor; docs/retention.md#live-traffic-during-a-pass).
   */
  RETENTION_PURGE_CHUNK: Type.Union([Type.Literal('auto'), Type.Integer({ minimum: 0 })], { default: 'auto' }),
  /**
   * Messages NATS keeps on the way to the pass's scan. Deep reads fastest; shallow leaves NATS more
   * room for live publishes while the scan runs, at the price of a slower scan
   * (docs/retention.md#live-traffic-during-a-pass).
   */
  RETENTION_SCAN_BUFFER: Type.Number({ default: 5000, minimum: 10, maximum: 100000 }),
  /**
   * Overwrite deleted stream messages on disk (JetStream's erase) instead of only marking them
   * deleted. Marked messages stay in their file block until JetStream compacts or drops the block;
   * erasing is about four times slower (docs/performance.md).
   */
  RETENTION_STREAM_ERASE: Type.Boolean({ default: true }),
  /**
   * Whether a pass erases the last 5 MiB below each purge point first, so that the purge leaves no
   * body in the block it ends in (eraseBeforePurge). 'auto' does on NATS before 2.11, where an
   * erasure takes under 1 ms, and leaves that head to a later purge from 2.11 on, where each
   * erasure rewrites its 8 MiB block (a pass's edge took 4 minutes on 2.15.1, paced). 'erase'
   * always does; 'leave' never (docs/retention.md#stream-compaction).
   */
  RETENTION_PURGE_EDGE: Type.Union([Type.Literal('auto'), Type.Literal('erase'), Type.Literal('leave')], { default: 'auto' }),
  /** Attachment files older than this with no row are orphans (a crash between commit and unlink). */
  RETENTION_ORPHAN_FILE_GRACE_SECONDS: Type.Number({ default: 86400, minimum: 0 }),
  /** node_exporter textfile collector: the job's metrics are written here after each pass. */
  RETENTION_METRICS_TEXTFILE: Type.Optional(Type.String()),
  /** Prometheus Pushgateway: the job's metrics are pushed here after each pass (job "parley_retention"). */
  PUSHGATEWAY_URL: Type.Optional(Type.String()),
};

export type RetentionConfig = ReturnType<typeof loadRetentionEnv>;

export function loadRetentionEnv(source: Record<string, string | undefined> = process.env) {
  return loadEnv(RetentionEnv, source);
}
