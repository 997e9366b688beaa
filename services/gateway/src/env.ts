import { fileURLToPath } from 'node:url';
import { Type } from '@sinclair/typebox';
import { AuthEnv, CommonEnv, GatewaySigningEnv, loadEnv } from '@parley/config';

export const GatewayEnv = {
  ...CommonEnv,
  ...AuthEnv,
  ...GatewaySigningEnv,
  /** The client port: HTTP API and /ws. */
  PORT: Type.Number({ default: 8080, minimum: 0, maximum: 65535 }),
  METRICS_PORT: Type.Number({ default: 9090, minimum: 0, maximum: 65535 }),
  /** Largest HTTP request body the gateway accepts. NATS' default max payload is 1 MiB, so stay under it. */
  HTTP_BODY_LIMIT: Type.Number({ default: 512 * 1024, minimum: 1024, maximum: 1024 * 1024 - 64 * 1024 }),
  /** Largest WebSocket frame; a larger one closes the socket with 1009. */
  WS_MAX_FRAME_BYTES: Type.Number({ default: 64 * 1024, minimum: 1024 }),
  /** Seconds a socket may stay open without authenticating. */
  WS_AUTH_TIMEOUT_SECONDS: Type.Number({ default: 5, minimum: 1 }),
  /**
   * Open sockets per user on one gateway, and sockets per client address not yet authenticated:
   * past them a new one is refused (HTTP 429 at the upgrade, close 4429 after an auth frame), so one
   * account or one address cannot hold the gateway's sockets (issue 23, finding 10).
   */
  WS_MAX_SOCKETS_PER_USER: Type.Number({ default: 32, minimum: 1 }),
  WS_MAX_UNAUTHENTICATED_PER_ADDRESS: Type.Number({ default: 256, minimum: 1 }),
  /**
   * Batches of authenticated sockets' set-ups (memberships, presence snapshots: up to 50 sockets
   * waiting together, a few requests to the services) and closed sockets' presence tear-downs
   * running at once; later ones wait in arrival order. Bounds what a reconnect storm asks of the
   * services' database pools (10 connections each by default).
   */
  WS_SETUP_CONCURRENCY: Type.Number({ default: 16, minimum: 1 }),
  /**
   * How often a gateway tells the others it is alive (one write to the presence bucket); one that
   * misses three is taken for gone, and its users connected nowhere else are announced offline.
   */
  PRESENCE_HEARTBEAT_MS: Type.Number({ default: 10_000, minimum: 100 }),
  /** Milliseconds the gateway waits for a service before answering 503. */
  SERVICE_TIMEOUT_MS: Type.Number({ default: 5000, minimum: 100 }),
  MESSAGE_MAX_CHARS: Type.Number({ default: 4096, minimum: 1, maximum: 65536 }),
  /** Largest attachment accepted (25 MiB), and where the attachment store keeps the files. */
  ATTACHMENT_MAX_BYTES: Type.Number({ default: 25 * 1024 * 1024, minimum: 1024 }),
  /**
   * Per user (issue 23, finding 7): uploads per minute on one gateway, and the bytes of uploads no
   * message carries yet (sent files do not count; unsent ones are swept after ATTACHMENT_GRACE_SECONDS
   * or deleted with DELETE /attachments/:id). Past either, 429.
   */
  ATTACHMENT_UPLOADS_PER_MINUTE: Type.Number({ default: 30, minimum: 1 }),
  ATTACHMENT_PENDING_BYTES: Type.Number({ default: 200 * 1024 * 1024, minimum: 1024 }),
  ATTACHMENTS_DIR: Type.String({ default: './data/attachments' }),
  /**
   * Thumbnails are made only of images with at most this many pixels (40 million: a 7000x5700 photo);
   * a larger one is refused with 422 from its header, before decoding: a decompression bomb (a few
   * KiB of PNG declaring 30000x30000) would otherwise take gigabytes of memory.
   */
  THUMBNAIL_MAX_PIXELS: Type.Number({ default: 40_000_000, minimum: 1 }),
  /**
   * Comma-separated addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed
   * (e.g. "10.0.0.0/8,loopback"). Empty: the header is ignored and the peer address is the client.
   */
  TRUSTED_PROXIES: Type.String({ default: '' }),
  /**
   * Accounts whose e-mail address is not verified may not start chats or add contacts (403
   * `email_unverified`); off by default, as before verification existed (issue 23, finding 5).
   */
  REQUIRE_VERIFIED_EMAIL: Type.Boolean({ default: false }),
  /** Comma-separated Origin values allowed to open /ws; empty allows any (native apps send none). */
  WS_ALLOWED_ORIGINS: Type.String({ default: '' }),
  /** Incoming frames per second per socket (average) and the burst allowed at once. */
  WS_FRAME_RATE: Type.Number({ default: 50, minimum: 1 }),
  WS_FRAME_BURST: Type.Number({ default: 100, minimum: 1 }),
  /** Outgoing bytes buffered for one socket before it is closed as a slow reader (4008). */
  WS_MAX_BUFFERED_BYTES: Type.Number({ default: 1024 * 1024, minimum: 16 * 1024 }),
  /** Most events a resume sends for one chat; beyond it the client gets `reset` and reloads history. */
  WS_RESUME_MAX_EVENTS: Type.Number({ default: 500, minimum: 1 }),
  /** How long live events wait after authentication for a possible `resume` frame (ms). */
  WS_RESUME_GRACE_MS: Type.Number({ default: 1000, minimum: 0 }),
  /**
   * The first this-many sends of each connection are first looked up by clientMsgId in the
   * projection, so a resend after a long disconnection (past the 2-minute dedup window) is still
   * recognised. Resends are a reconnecting client's first frames; later sends skip the lookup.
   */
  WS_RESEND_CHECK_SENDS: Type.Number({ default: 20, minimum: 0 }),
  WS_RESEND_CHECK_SECONDS: Type.Number({ default: 10, minimum: 0 }),
  /** The built web client served at `/` (src/ and dist/ are both three levels below the repo root). */
  WEB_CLIENT_DIR: Type.String({ default: fileURLToPath(new URL('../../../clients/web/dist', import.meta.url)) }),
};

export type GatewayConfig = ReturnType<typeof loadGatewayEnv>;

export function loadGatewayEnv(source: Record<string, string | undefined> = process.env) {
  return loadEnv(GatewayEnv, source);
}
