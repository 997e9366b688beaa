import type * as UWS from 'uWebSockets.js';
import { TokenVerifier } from '@parley/auth';
import type { Bus } from '@parley/bus';
import { ChatWriter, chatSequencer } from '@parley/chat-writer';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { GatewayConfig } from './env.js';
import { LocalDiskStore } from '@parley/storage';
import { loadNativeUws } from './uws.js';
import { apiHandler } from './http/api-handler.js';
import { downloadHandler, uploadHandler } from './http/attachments.js';
import { thumbnailHandler } from './http/thumbnails.js';
import { clientAddressResolver } from './http/client-address.js';
import { staticHandler } from './http/static.js';
import { authenticator } from './auth/authenticator.js';
import { RevocationList } from './auth/revocations.js';
import { CLOSE_GOING_AWAY, CLOSE_UNAUTHORIZED, wsBehavior } from './ws/connection.js';
import { ChatDelivery } from './ws/delivery.js';
import { LiveFanout } from './ws/fanout.js';
import { ResendCheck } from './ws/resend-check.js';
import { Presence } from './ws/presence.js';
import { Profiles } from './ws/profiles.js';
import { Typing } from './ws/typing.js';
import { SocketRegistry, type Socket } from './ws/registry.js';
import { Slots } from './slots.js';
import { listenHost } from './listen-host.js';

export interface GatewayDeps {
  namespace: string;
  bus: Bus;
  log: Logger;
  metrics: Metrics;
}

export interface Gateway {
  /** The port the client listener is bound to (useful when PORT=0). */
  port: number;
  stop(): Promise<void>;
}

/**
 * The gateway: one uWebSockets.js listener for `/api/v1/*` (forwarded to services over NATS) and
 * `/ws` (the realtime protocol), plus the fan-out consumer that feeds sockets. Reads no env.
 */
export async function startGateway(deps: GatewayDeps, config: GatewayConfig): Promise<Gateway> {
  // Here, not at import: a missing native build is a start-up error, reported like any other.
  const uWS = loadNativeUws();
  const app = uWS.App();
  const registry = new SocketRegistry();
  const revocations = new RevocationList({
    ...deps,
    tokenTtlSeconds: config.ACCESS_TOKEN_TTL,
    // A revoked session's open sockets are closed at once (issue 3: within a second).
    onRevoked: (sessionId) => {
      for (const socket of registry.socketsOfSession(sessionId)) delivery.outbox.end(socket, CLOSE_UNAUTHORIZED, 'session revoked');
    },
  });
  // Load every live revocation before accepting a single request.
  await revocations.start();
  const authenticate = authenticator(new TokenVerifier(config.JWT_SECRET), revocations);
  const sockets = new Set<Socket>();
  const draining = { value: false };
  const sequencer = chatSequencer(deps.bus, deps.namespace, deps.metrics);

  // The fan-out follows exactly the chats that have a socket here (see LiveFanout).
  const followHooks: { first?: (chatId: string) => void; last?: (chatId: string) => void } = {};
  const delivery = new ChatDelivery(deps.metrics, config.WS_MAX_BUFFERED_BYTES, followHooks);
  const fanout = new LiveFanout({ ...deps, registry, delivery, sequencer, maxCatchUp: config.WS_RESUME_MAX_EVENTS });
  followHooks.first = (chatId) => fanout.follow(chatId);
  followHooks.last = (chatId) => fanout.unfollow(chatId);
  fanout.start();
  const typing = new Typing({ nc: deps.bus.nc, namespace: deps.namespace, delivery, log: deps.log, metrics: deps.metrics });
  typing.start();
  const presence = new Presence({ ...deps, registry, delivery, serviceTimeoutMs: config.SERVICE_TIMEOUT_MS, replicas: config.STREAM_REPLICAS, heartbeatMs: config.PRESENCE_HEARTBEAT_MS });
  await presence.start();
  const profiles = new Profiles({ ...deps, registry, delivery, serviceTimeoutMs: config.SERVICE_TIMEOUT_MS });
  profiles.start();
  app.ws(
    '/ws',
    wsBehavior({
      ...deps,
      authenticate,
      registry,
      delivery,
      typing,
      presence,
      sockets,
      writer: new ChatWriter({ bus: deps.bus, namespace: deps.namespace, sequencer }),
      basis: fanout,
      maxChars: config.MESSAGE_MAX_CHARS,
      serviceTimeoutMs: config.SERVICE_TIMEOUT_MS,
      maxFrameBytes: config.WS_MAX_FRAME_BYTES,
      authTimeoutSeconds: config.WS_AUTH_TIMEOUT_SECONDS,
      frameRate: config.WS_FRAME_RATE,
      frameBurst: config.WS_FRAME_BURST,
      maxBufferedBytes: config.WS_MAX_BUFFERED_BYTES,
      allowedOrigins: config.WS_ALLOWED_ORIGINS.split(',').map((o) => o.trim()).filter(Boolean),
      resumeMaxEvents: config.WS_RESUME_MAX_EVENTS,
      resumeGraceMs: config.WS_RESUME_GRACE_MS,
      maxSocketsPerUser: config.WS_MAX_SOCKETS_PER_USER,
      maxUnauthenticatedPerAddress: config.WS_MAX_UNAUTHENTICATED_PER_ADDRESS,
      // Waiting is not bounded here: each waiting socket is an open connection, bounded by the caps.
      setups: new Slots(config.WS_SETUP_CONCURRENCY, Number.MAX_SAFE_INTEGER),
      clientAddress: clientAddressResolver(config.TRUSTED_PROXIES.split(',').map((s) => s.trim()).filter(Boolean)),
      resendCheck: new ResendCheck({
        bus: deps.bus,
        namespace: deps.namespace,
        timeoutMs: config.SERVICE_TIMEOUT_MS,
        maxSends: config.WS_RESEND_CHECK_SENDS,
        windowMs: config.WS_RESEND_CHECK_SECONDS * 1000,
      }),
      draining,
    }),
  );
  const attachmentDeps = {
    ...deps,
    store: new LocalDiskStore(config.ATTACHMENTS_DIR),
    authenticate,
    maxBytes: config.ATTACHMENT_MAX_BYTES,
    serviceTimeoutMs: config.SERVICE_TIMEOUT_MS,
    uploadsPerMinute: config.ATTACHMENT_UPLOADS_PER_MINUTE,
    pendingBytes: config.ATTACHMENT_PENDING_BYTES,
  };
  app.post('/api/v1/attachments', uploadHandler(attachmentDeps));
  // HEAD beside each GET (api.md: GET's status and headers, no body): without it, HEAD fell through
  // to app.any below and reached the messages service, which has no such route (404).
  const download = downloadHandler(attachmentDeps);
  const thumbnail = thumbnailHandler({ ...attachmentDeps, maxPixels: config.THUMBNAIL_MAX_PIXELS });
  app.get('/api/v1/attachments/:id', download).head('/api/v1/attachments/:id', download);
  app.get('/api/v1/attachments/:id/thumbnail', thumbnail).head('/api/v1/attachments/:id/thumbnail', thumbnail);
  // The web client's files; yields /api/* and /ws to the handlers below.
  app.get('/*', staticHandler({ dir: config.WEB_CLIENT_DIR, log: deps.log }));
  app.any(
    '/*',
    apiHandler({
      ...deps,
      authenticate,
      revoke: (sessionId) => revocations.add(sessionId),
      bodyLimit: config.HTTP_BODY_LIMIT,
      serviceTimeoutMs: config.SERVICE_TIMEOUT_MS,
      clientAddress: clientAddressResolver(config.TRUSTED_PROXIES.split(',').map((s) => s.trim()).filter(Boolean)),
      requireVerifiedEmail: config.REQUIRE_VERIFIED_EMAIL,
      profileChanged: (user) => {
        profiles.changed(user).catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'profile notice failed'));
      },
    }),
  );

  // Loopback only while a published development key is in use (listen-host.ts).
  const host = listenHost(config);
  const listenSocket = await new Promise<UWS.us_listen_socket>((resolve, reject) => {
    app.listen(host, config.PORT, (token) => (token ? resolve(token) : reject(new Error(`gateway cannot listen on port ${config.PORT}`))));
  });
  const port = uWS.us_socket_local_port(listenSocket as unknown as UWS.us_socket);
  if (host === '127.0.0.1') deps.log.warn({ port, host }, 'gateway listening on 127.0.0.1 only: it uses the published development keys (set JWT_SECRET and GATEWAY_SIGNING_KEY, npm run secrets, to listen on every interface)');
  else deps.log.info({ port, host }, 'gateway listening');

  return {
    port,
    async stop() {
      // Stop accepting connections and frames; let the frames already being handled finish (a
      // send in flight still gets its ack), then ask every client to reconnect elsewhere.
      uWS.us_listen_socket_close(listenSocket);
      draining.value = true;
      const inFlight = Promise.all([...sockets].map((s) => s.getUserData().state.chain));
      await Promise.race([inFlight, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      for (const socket of [...sockets]) delivery.outbox.end(socket, CLOSE_GOING_AWAY, 'server shutting down, reconnect');
      await fanout.stop();
      await typing.stop();
      await presence.stop();
      await profiles.stop();
      await revocations.stop();
    },
  };
}
