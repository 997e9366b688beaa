import { Type } from '@sinclair/typebox';
import { CommonEnv, GatewayVerifyEnv, loadEnv } from '@parley/config';

export const MessagesEnv = {
  ...CommonEnv,
  ...GatewayVerifyEnv,
  METRICS_PORT: Type.Number({ default: 9092 }),
  MESSAGE_MAX_CHARS: Type.Number({ default: 4096, minimum: 1, maximum: 65536 }),
  REDIS_CHATS_TTL: Type.Number({ default: 1800, minimum: 1 }),
  /** Groups one account may create in 24 hours; past it 429 (issue 23, finding 8: group spam). */
  GROUPS_PER_DAY: Type.Number({ default: 50, minimum: 1 }),
  /** The attachment store's folder; the gateway writes uploads there, this service deletes them. */
  ATTACHMENTS_DIR: Type.String({ default: './data/attachments' }),
  /** An upload no message uses within this many seconds is deleted, and how often to look. */
  ATTACHMENT_GRACE_SECONDS: Type.Number({ default: 86400, minimum: 1 }),
  ATTACHMENT_SWEEP_INTERVAL_SECONDS: Type.Number({ default: 600, minimum: 1 }),
};

export type MessagesConfig = ReturnType<typeof loadMessagesEnv>;

export function loadMessagesEnv(source: Record<string, string | undefined> = process.env) {
  return loadEnv(MessagesEnv, source);
}
