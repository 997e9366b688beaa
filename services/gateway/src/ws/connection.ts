import type { WebSocketBehavior } from 'uWebSockets.js';
import { requestJson, ServiceUnavailableError } from '@parley/bus';
import type { Authenticate } from '../auth/authenticator.js';
import { subjects, type RpcMethods } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import { AuthFrame, errorFrame, refOf, SendFrame } from './frames.js';
import { chatTopic, type SocketData, type Socket, type SocketRegistry } from './registry.js';
import { handleSend, type SendDeps } from './send.js';

export interface ConnectionDeps extends SendDeps {
  authenticate: Authenticate;
  registry: SocketRegistry;
  /** Every open socket, authenticated or not (for shutdown). */
  sockets: Set<Socket>;
  log: Logger;
  metrics: Metrics;
  maxFrameBytes: number;
  authTimeoutSeconds: number;
}

/** Close codes (docs/protocol.md). 4401: authentication failed or timed out. */
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_INTERNAL = 1011;
/** 1009 message too big: a frame over WS_MAX_FRAME_BYTES. */
export const CLOSE_TOO_BIG = 1009;
/** 1001 going away: the gateway is shutting down; reconnect (to any gateway) and resume. */
export const CLOSE_GOING_AWAY = 1001;

let nextSocketId = 1;

/**
 * The /ws endpoint. Authentication is by `?token=` at upgrade (a bad token is refused with 401
 * before any socket exists) or by an `auth` frame within WS_AUTH_TIMEOUT_SECONDS. Frames are
 * handled in arrival order per socket; each bad frame gets an `error` frame and the socket stays.
 */
export function wsBehavior(deps: ConnectionDeps): WebSocketBehavior<SocketData> {
  const send = (socket: Socket, frame: object, op: string) => {
    const data = socket.getUserData();
    if (data.closed) return;
    socket.send(JSON.stringify(frame), false);
    deps.metrics.websocketMessages.inc({ direction: 'out', op });
  };

  const authenticate = (socket: Socket, userId: string, sessionId: string) => {
    const data = socket.getUserData();
    data.userId = userId;
    data.sessionId = sessionId;
    if (data.authTimer) clearTimeout(data.authTimer);
    data.authTimer = null;
    deps.registry.add(userId, sessionId, socket);
    deps.metrics.activeUsers.set(deps.registry.userCount);
    data.ready = (async () => {
      const { chatIds } = await requestJson<RpcMethods['messages.memberships']['res']>(
        deps.bus.nc,
        subjects.rpc(deps.namespace, 'messages', 'memberships'),
        { userId } satisfies RpcMethods['messages.memberships']['req'],
        deps.serviceTimeoutMs,
      );
      if (data.closed) return;
      for (const chatId of chatIds) socket.subscribe(chatTopic(chatId));
    })();
    data.ready.catch((error: unknown) => {
      deps.log.warn({ err: (error as Error).message, userId }, 'could not load memberships; closing socket');
      if (!data.closed) socket.end(CLOSE_INTERNAL, 'memberships unavailable, reconnect');
    });
  };

  const onFrame = async (socket: Socket, text: string) => {
    const data = socket.getUserData();
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      send(socket, errorFrame('invalid_json', 'Frame is not valid JSON'), 'error');
      return;
    }
    const op = typeof (frame as { op?: unknown } | null)?.op === 'string' ? (frame as { op: string }).op : undefined;
    deps.metrics.websocketMessages.inc({ direction: 'in', op: op && KNOWN_OPS.has(op) ? op : 'unknown' });
    if (op === 'ping') {
      if (data.ready) await data.ready.catch(() => {});
      send(socket, { op: 'pong' }, 'pong');
      return;
    }
    if (!data.userId) {
      if (op !== 'auth' || !AuthFrame.check(frame)) {
        send(socket, errorFrame('unauthorized', 'Authenticate first: {"op":"auth","token":...}'), 'error');
        return;
      }
      const claims = await deps.authenticate(frame.token);
      if (!claims) {
        socket.end(CLOSE_UNAUTHORIZED, 'invalid token');
        return;
      }
      authenticate(socket, claims.userId, claims.sessionId);
      await data.ready?.catch(() => {});
      send(socket, { op: 'authenticated', userId: claims.userId }, 'authenticated');
      return;
    }
    await data.ready;
    switch (op) {
      case 'send': {
        if (!SendFrame.check(frame)) {
          const issue = SendFrame.issues(frame, 1)[0];
          send(socket, errorFrame('invalid_request', `Invalid send frame: ${issue?.path} ${issue?.message}`, refOf(frame)), 'error');
          return;
        }
        try {
          const outcome = await handleSend(deps, socket, data.userId, frame);
          if (outcome.ok) send(socket, { op: 'ack', clientMsgId: frame.clientMsgId, messageId: outcome.messageId, seq: outcome.seq }, 'ack');
          else send(socket, errorFrame(outcome.code, outcome.message, frame.clientMsgId), 'error');
        } catch (error) {
          if (!(error instanceof ServiceUnavailableError)) deps.log.error({ err: error }, 'send failed');
          send(socket, errorFrame('unavailable', 'Not stored; retry with the same clientMsgId', frame.clientMsgId), 'error');
        }
        return;
      }
      case 'auth':
        send(socket, errorFrame('invalid_request', 'Already authenticated'), 'error');
        return;
      case 'typing':
      case 'read':
      case 'resume':
        send(socket, errorFrame('not_implemented', `"${op}" is not available in this version`, refOf(frame)), 'error');
        return;
      default:
        send(socket, errorFrame('unknown_op', `Unknown op ${JSON.stringify(op ?? null)}`, refOf(frame)), 'error');
    }
  };

  return {
    // uWS drops a connection abruptly (1006) above its own limit; keep that limit well above ours
    // so that an oversize frame gets a proper 1009 close (below) that the client can understand.
    maxPayloadLength: Math.max(deps.maxFrameBytes * 4, 1024 * 1024),
    idleTimeout: 120,
    // Bounded outgoing buffer per socket (a slow reader cannot grow gateway memory without limit).
    maxBackpressure: 1024 * 1024,
    closeOnBackpressureLimit: 1,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const token = new URLSearchParams(req.getQuery() ?? '').get('token');
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      const userData = (): SocketData => ({
        id: nextSocketId++,
        userId: null,
        sessionId: null,
        ready: null,
        closed: false,
        authTimer: null,
        chain: Promise.resolve(),
      });
      if (token === null) {
        res.upgrade(userData(), key, protocol, extensions, context);
        return;
      }
      void deps.authenticate(token).then((claims) => {
        if (aborted) return;
        res.cork(() => {
          if (!claims) {
            res.writeStatus('401 Unauthorized').writeHeader('content-type', 'application/json');
            res.end(JSON.stringify({ error: { code: 'unauthorized', message: 'Missing or invalid access token' } }));
            return;
          }
          res.upgrade({ ...userData(), userId: claims.userId, sessionId: claims.sessionId }, key, protocol, extensions, context);
        });
      });
    },
    open: (socket) => {
      deps.metrics.websocketConnections.inc();
      const data = socket.getUserData();
      deps.sockets.add(socket);
      if (data.userId && data.sessionId) {
        authenticate(socket, data.userId, data.sessionId);
      } else {
        data.authTimer = setTimeout(() => {
          if (!data.closed && !data.userId) socket.end(CLOSE_UNAUTHORIZED, 'authentication timeout');
        }, deps.authTimeoutSeconds * 1000);
      }
    },
    message: (socket, message, isBinary) => {
      if (message.byteLength > deps.maxFrameBytes) {
        deps.metrics.websocketMessages.inc({ direction: 'in', op: 'oversize' });
        socket.end(CLOSE_TOO_BIG, `frame larger than ${deps.maxFrameBytes} bytes`);
        return;
      }
      if (isBinary) {
        send(socket, errorFrame('invalid_request', 'Binary frames are not supported; send JSON text'), 'error');
        return;
      }
      // Decode now: uWS frees the buffer after this callback. Then chain per socket, so frames are
      // handled in order even though handling is async.
      const text = Buffer.from(message).toString('utf8');
      const data = socket.getUserData();
      data.chain = data.chain.then(() => onFrame(socket, text)).catch((error: unknown) => {
        deps.log.error({ err: error }, 'frame handling failed');
      });
    },
    close: (socket) => {
      const data = socket.getUserData();
      data.closed = true;
      deps.sockets.delete(socket);
      if (data.authTimer) clearTimeout(data.authTimer);
      deps.metrics.websocketConnections.dec();
      if (data.userId) {
        deps.registry.remove(data.userId, data.sessionId, socket);
        deps.metrics.activeUsers.set(deps.registry.userCount);
      }
    },
  };
}

const KNOWN_OPS = new Set(['auth', 'send', 'typing', 'read', 'resume', 'ping']);

