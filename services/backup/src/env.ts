import { Type } from '@sinclair/typebox';
import type { BusIdentity } from '@parley/bus';
import { CommonEnv, loadEnv } from '@parley/config';

/**
 * The backup job's settings. It reads the same common settings as the services (the namespace,
 * the servers, and the retention days, which shape the stream declarations it restores).
 */
export const BackupEnv = {
  ...CommonEnv,
  /** Unused by the one-shot commands (they expose no endpoint); kept so the common settings validate. */
  METRICS_PORT: Type.Number({ default: 9094 }),
  /** The attachment store of the messages service and the gateway (the same shared directory). */
  ATTACHMENTS_DIR: Type.String({ default: './data/attachments' }),
  /** Rotation: how many daily, weekly and monthly archives `rotate` keeps. */
  BACKUP_KEEP_DAILY: Type.Number({ default: 7, minimum: 0 }),
  BACKUP_KEEP_WEEKLY: Type.Number({ default: 4, minimum: 0 }),
  BACKUP_KEEP_MONTHLY: Type.Number({ default: 6, minimum: 0 }),
  /** Where restore and verify unpack an archive (needs room for it, uncompressed); default the OS temp dir. */
  BACKUP_TMP_DIR: Type.Optional(Type.String()),
  /** How long restore waits for the services' projectors to replay the events newer than the checkpoints. */
  BACKUP_REPLAY_TIMEOUT_SECONDS: Type.Number({ default: 3600, minimum: 1 }),
  /** node_exporter textfile collector: the job's metrics are written here after a successful backup. */
  BACKUP_METRICS_TEXTFILE: Type.Optional(Type.String()),
  /** Prometheus Pushgateway: the job's metrics are pushed here after a successful backup (job "parley_backup"). */
  PUSHGATEWAY_URL: Type.Optional(Type.String()),
  /**
   * Off-site copies: `s3://bucket/prefix` in S3 or an S3-compatible store. `daily` uploads each
   * archive there and rotates there with the BACKUP_KEEP_* policy; `push` and `pull` do it by hand.
   * Credentials: the AWS SDK's chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, a role).
   */
  BACKUP_S3_URL: Type.Optional(Type.String({ pattern: '^s3://' })),
  /** The store's address when it is not AWS (MinIO, Ceph, Garage...): path-style requests are used. */
  BACKUP_S3_ENDPOINT: Type.Optional(Type.String()),
  BACKUP_S3_REGION: Type.String({ default: 'us-east-1' }),
};

export type BackupConfig = ReturnType<typeof loadBackupEnv>;

export function loadBackupEnv(source: Record<string, string | undefined> = process.env) {
  return loadEnv(BackupEnv, source);
}

/** The backup job's identity on the bus: the `backup` NATS user of its namespace. */
export function backupIdentity(config: BackupConfig): BusIdentity {
  return { principal: 'backup', namespace: config.PARLEY_NAMESPACE, nkeyFile: config.NATS_NKEY_FILE, nkeyDir: config.NATS_NKEY_DIR };
}
