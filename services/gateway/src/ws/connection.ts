import type { WebSocketBehavior } from 'uWebSockets.js';
import { callRpc, ServiceUnavailableError } from '@parley/bus';
import { clientNetwork, inputIssue, MAX_SETUP_BATCH, streamName, subjects } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { Authenticate } from '../auth/authenticator.js';
import { CLOSE_SLOW_READER, type ChatDelivery } from './delivery.js';
import { AuthFrame, errorFrame, ReadFrame, readRefOf, refOf, ResumeFrame, SendFrame, TypingFrame } from './frames.js';
import { eventsAfter, eventsBetween } from '@parley/bus';
import type { SocketData, SocketHolder, Socket, SocketRegistry } from './registry.js';
import { handleSend, type SendDeps } from './send.js';
import type { Presence } from './presence.js';
import type { Typing } from './typing.js';
import { normaliseAddress } from '../http/client-address.js';
import { Batches, type Slots } from '../slots.js';
import { setUpSockets, type SetupDeps } from './setup.js';
import { removedIn, replayTo } from './replay.js';

export interface ConnectionDeps extends SendDeps {
  /** The live fan-out: what a send is decided on, and what socket set-ups note. */
  basis: SendDeps['basis'] & SetupDeps['basis'];
  authenticate: Authenticate;
  registry: SocketRegistry;
  delivery: ChatDelivery;
  typing: Typing;
  presence: Presence;
  /** Every open socket, authenticated or not (for shutdown). */
  sockets: Set<Socket>;
  log: Logger;
  metrics: Metrics;
  maxFrameBytes: number;
  authTimeoutSeconds: number;
  /** Frames per second a socket may send on average, and the burst it may send at once. */
  frameRate: number;
  frameBurst: number;
  /** Outgoing bytes buffered for a socket before it counts as a slow reader and is closed. */
  maxBufferedBytes: number;
  /** Allowed Origin header values; empty allows any (native clients send none). */
  allowedOrigins: string[];
  /** Most events one resume sends for one chat before answering `reset` instead. */
  resumeMaxEvents: number;
  /** How long live events wait after authentication for a `resume` to arrive (ms); one that arrived holds them until it has run. */
  resumeGraceMs: number;
  /** Set when the gateway shuts down: new frames are refused, in-flight ones finish. */
  draining: { value: boolean };
  /** Caps: open sockets per user, unauthenticated sockets per client address (WS_MAX_*). */
  maxSocketsPerUser: number;
  maxUnauthenticatedPerAddress: number;
  /**
   * Batches of socket set-ups (memberships, presence snapshots) and closed sockets' presence
   * tear-downs running at once; the rest wait their turn (WS_SETUP_CONCURRENCY).
   */
  setups: Slots;
  /** The client's address from the socket peer and X-Forwarded-For (TRUSTED_PROXIES). */
  clientAddress: (peer: string, forwardedFor: string) => string;
}

/** Close codes (docs/protocol.md). */
export const CLOSE_UNAUTHORIZED = 4401;
export const CLOSE_INTERNAL = 1011;
/** 1001 going away: the gateway is shutting down; reconnect (to any gateway) and resume. */
export const CLOSE_GOING_AWAY = 1001;
/** 1009 message too big: a frame over WS_MAX_FRAME_BYTES. */
export const CLOSE_TOO_BIG = 1009;
/** 1008 policy violation: the client kept flooding after rate-limit errors. */
export const CLOSE_FLOOD = 1008;
/** A user already holds WS_MAX_SOCKETS_PER_USER sockets on this gateway (like HTTP 429). */
export const CLOSE_TOO_MANY = 4429;
/** Rate-limit errors a socket may receive before it is closed as a flood. */
const MAX_STRIKES = 20;

let nextSocketId = 1;
/** Where every socket's frame chain starts: one settled promise shared, not one per socket. */
const SETTLED = Promise.resolve();

/**
 * The /ws endpoint. Authentication is by `?token=` at upgrade (a bad token is refused with 401
 * before any socket exists) or by an `auth` frame within WS_AUTH_TIMEOUT_SECONDS. Frames are
 * handled in arrival order per socket; each bad frame gets an `error` frame and the socket stays,
 * except for oversize frames (1009) and floods (1008).
 */
export function wsBehavior(deps: ConnectionDeps): WebSocketBehavior<SocketHolder> {
  const chatsStream = streamName(deps.namespace, 'chats');
  /** Sockets waiting for their set-up, and closed sockets' tear-downs waiting their turn. */
  const showWaiting = () => deps.metrics.socketSetupsWaiting.set(setups.waiting + deps.setups.queued - setups.queuedJobs);
  // Set-ups go in batches, each in its turn (WS_SETUP_CONCURRENCY): in a reconnect storm the
  // services get one request for many sockets, at the rate they answer them, instead of requests
  // per socket all at once and then timeouts that close the sockets.
  const setups = new Batches<{ socket: Socket; userId: string }>(deps.setups, MAX_SETUP_BATCH, (batch) => {
    showWaiting();
    return setUpSockets(deps, batch);
  });
  /** Runs a closed socket's tear-down in its turn, in the same slots as the set-ups. */
  const inTurn = <T>(job: () => Promise<T>): Promise<T> => {
    const done = deps.setups.run(() => {
      showWaiting();
      return job();
    });
    showWaiting();
    return done;
  };
  const send = (socket: Socket, frame: object, op: string) => {
    if (socket.getUserData().state.closed) return;
    deps.delivery.outbox.send(socket, JSON.stringify(frame));
    deps.metrics.websocketMessages.inc({ direction: 'out', op });
  };

  /** Unauthenticated sockets per client address. */
  const pending = new Map<string, number>();
  const release = (data: SocketData) => {
    if (data.pendingAddress === null) return;
    const left = (pending.get(data.pendingAddress) ?? 1) - 1;
    if (left > 0) pending.set(data.pendingAddress, left);
    else pending.delete(data.pendingAddress);
    data.pendingAddress = null;
  };

  /** Ends the hold on live events, unless a resume is running (it releases them when done). */
  const releaseHeld = (socket: Socket) => {
    const data = socket.getUserData().state;
    if (!data.closed && data.held && !data.resuming) deps.delivery.release(socket);
  };

  /**
   * Closes the socket with 4401 when its access token expires, unless an `auth` frame with a newer
   * token of the same session renews it first. Before, a socket outlived its token for good: whoever
   * held a token for a moment could keep one open as that user until the session was revoked.
   */
  const closeAtExpiry = (socket: Socket) => {
    const data = socket.getUserData().state;
    if (data.authTimer) clearTimeout(data.authTimer);
    data.authTimer = null;
    if (!data.expiresAt) return;
    data.authTimer = setTimeout(() => {
      if (!data.closed) deps.delivery.outbox.end(socket, CLOSE_UNAUTHORIZED, 'access token expired');
    }, Math.max(0, data.expiresAt - Date.now()));
    data.authTimer.unref();
  };

  const authenticate = (socket: Socket, userId: string, sessionId: string): boolean => {
    const data = socket.getUserData().state;
    // Closed while its token was checked (an auth frame and a close in one write): its close ran
    // with no user, so nothing would ever take it out of the registry again. Before, each such
    // socket counted against the user's cap for good and kept them "online".
    if (data.closed) return false;
    release(data);
    if (deps.registry.countOf(userId) >= deps.maxSocketsPerUser) {
      // Never counted as this user's (close() must not take presence or a registry entry away).
      data.userId = null;
      data.sessionId = null;
      deps.delivery.outbox.end(socket, CLOSE_TOO_MANY, 'too many connections for this account');
      return false;
    }
    data.userId = userId;
    data.sessionId = sessionId;
    data.resendWindowFrom = Date.now();
    // Clears the authentication timeout, then times the token's expiry.
    closeAtExpiry(socket);
    deps.registry.add(userId, sessionId, socket);
    data.held = [];
    // The grace ends with the client's first frame *arriving* (docs/protocol.md, Holding), so the
    // release queues behind the frames already received: a `resume` that came in time but waits for
    // `ready` (memberships from a messages service that is restarting) runs first. Releasing at once
    // sent live events before it, and the resume then skipped everything up to them as already
    // sent: "c2 never got 2 message(s) ..., first seq 2 (seqs 2,3; neighbours 1:- 4:live)" in
    // e2e/faults/projector.test.ts.
    data.holdTimer = setTimeout(() => {
      const releaseNow = () => {
        try {
          releaseHeld(socket);
        } catch (error) {
          deps.log.error({ err: error }, 'releasing held events failed');
        }
      };
      // No frame has arrived (the chain is where every socket's starts): nothing to queue behind,
      // and an idle socket keeps no promise of its own.
      if (data.chain === SETTLED) releaseNow();
      else data.chain = data.chain.then(releaseNow);
    }, deps.resumeGraceMs);
    data.ready = setups.add({ socket, userId }).then(() => {
      // Set up: frames need not wait any more, and an idle socket keeps no settled promise.
      data.ready = null;
    });
    showWaiting();
    data.ready.catch((error: unknown) => {
      deps.log.warn({ err: (error as Error).message, userId }, 'could not load memberships; closing socket');
      if (!data.closed) deps.delivery.outbox.end(socket, CLOSE_INTERNAL, 'memberships unavailable, reconnect');
    });
    return true;
  };

  /** Token bucket: false when the frame must be refused. */
  const allowFrame = (data: SocketData, now: number): boolean => {
    data.tokens = Math.min(deps.frameBurst, data.tokens + ((now - data.refilledAt) / 1000) * deps.frameRate);
    data.refilledAt = now;
    if (data.tokens < 1) return false;
    data.tokens -= 1;
    return true;
  };

  const resume = async (socket: Socket, cursors: Record<string, number>) => {
    const data = socket.getUserData().state;
    data.held ??= [];
    data.resuming = true;
    /** The chats of the frame not answered yet (a failure leaves them so: see below). */
    const unfinished = new Map(Object.entries(cursors));
    try {
      for (const [chatId, cursor] of Object.entries(cursors)) {
        if (data.closed) return;
        // A chat the user is not in gets the same answer as one that does not exist.
        if (!data.chats.has(chatId)) {
          unfinished.delete(chatId);
          send(socket, errorFrame('not_found', 'No such chat', chatId), 'error');
          continue;
        }
        const after = await eventsAfter(deps.bus, chatsStream, subjects.chat(deps.namespace, chatId), cursor, deps.resumeMaxEvents);
        unfinished.delete(chatId);
        // A cursor past the chat's newest event (a backup restored behind the client, a client's
        // bug) is reset to the newest too: taken as delivered, it dropped every live event up to
        // the cursor, and the chat went silent on this socket. So is a cursor below events the
        // socket already got live without the ones before them (a resume after the hold's grace,
        // or after a failed resume): those would come after newer ones, or, skipped as sent
        // before, never (a silent hole).
        if ('reset' in after || after.headSeq < cursor || deps.delivery.resumeGap(socket, chatId, cursor)) {
          // Unless the events it skips removed the user: a gateway that missed the live removal
          // (cut off from NATS) still has the socket in the chat, and a reset would keep it there,
          // getting the chat's typing and receipts. It leaves, and is answered as for a chat it is
          // not in.
          if (cursor < after.headSeq && removedIn(await eventsBetween(deps.bus, chatsStream, subjects.chat(deps.namespace, chatId), cursor, after.headSeq)).has(data.userId!)) {
            deps.delivery.leave(socket, chatId);
            send(socket, errorFrame('not_found', 'No such chat', chatId), 'error');
            continue;
          }
          // Live delivery continues after the head; the client reloads history over HTTP up to it,
          // waiting for the projection when its answer's `seq` is older (it may lag the stream).
          const seq = Math.max(after.headSeq, 'reset' in after || after.headSeq < cursor ? 0 : deps.delivery.deliveredOf(socket, chatId));
          deps.delivery.resetTo(socket, chatId, seq);
          send(socket, { op: 'reset', chatId, seq }, 'reset');
          continue;
        }
        // Events the socket already has (live, before the resume) are not sent twice.
        deps.delivery.deliveredUpTo(socket, chatId, cursor);
        // The replay can reach past a removal of this user that the live fan-out has not applied
        // yet (the socket was set up from a projection answer that trailed it): they get the
        // removal itself, then nothing more of the chat, and the socket leaves it, as a live
        // removal does.
        const replayed = replayTo(deps.delivery, socket, chatId, data.userId!, after.events);
        deps.delivery.countSent(replayed.sent);
        if (!replayed.member) deps.delivery.leave(socket, chatId);
      }
      send(socket, { op: 'resumed' }, 'resumed');
      // The reconnect recipe resends the outbox right after `resumed`: its window starts now.
      data.resendWindowFrom = Date.now();
    } catch (error) {
      // Failed (a stream read timed out): the held live events are released below all the same,
      // and for a chat not answered they would start above the client's cursor, the events
      // between never sent, and a retry from that cursor would skip them as already sent. Such a
      // chat is reset to its newest event here instead; one whose held events follow the cursor
      // goes on from it.
      if (!data.closed) for (const [chatId, cursor] of unfinished) resetIfHole(socket, chatId, cursor);
      throw error;
    } finally {
      data.resuming = false;
      deps.delivery.release(socket);
    }
  };

  /** After a failed resume: a `reset` for a chat whose live events would not follow the cursor. */
  const resetIfHole = (socket: Socket, chatId: string, cursor: number) => {
    const data = socket.getUserData().state;
    if (!data.chats.has(chatId) && !data.notIn?.has(chatId)) return;
    const delivered = deps.delivery.deliveredOf(socket, chatId);
    const held = deps.delivery.heldSeqs(socket, chatId).filter((seq) => seq > Math.max(delivered, cursor));
    const hole = deps.delivery.resumeGap(socket, chatId, cursor) || (held.length > 0 && held[0]! > Math.max(delivered, cursor) + 1);
    // No hole: the held events are released as they are, and a retry goes on from the cursor.
    if (!hole) return;
    // The newest event the socket would otherwise get (the stream cannot be asked: it just failed).
    const seq = Math.max(delivered, held.at(-1) ?? 0);
    deps.delivery.resetTo(socket, chatId, seq);
    send(socket, { op: 'reset', chatId, seq }, 'reset');
  };

  const onFrame = async (socket: Socket, text: string) => {
    const data = socket.getUserData().state;
    let frame: unknown;
    try {
      frame = JSON.parse(text);
    } catch {
      send(socket, errorFrame('invalid_json', 'Frame is not valid JSON'), 'error');
      return;
    }
    // A send's body with U+0000 used to be acked, published and then refused by the projection
    // forever (an acked message missing from history); see inputIssue.
    const issue = inputIssue(frame);
    if (issue) {
      send(socket, errorFrame('invalid_request', `Invalid frame: ${issue.path} ${issue.message}`, refOf(frame)), 'error');
      return;
    }
    const op = typeof (frame as { op?: unknown } | null)?.op === 'string' ? (frame as { op: string }).op : undefined;
    deps.metrics.websocketMessages.inc({ direction: 'in', op: op && KNOWN_OPS.has(op) ? op : 'unknown' });
    if (op === 'ping') {
      if (data.ready) await data.ready.catch(() => {});
      releaseHeld(socket);
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
        deps.delivery.outbox.end(socket, CLOSE_UNAUTHORIZED, 'invalid token');
        return;
      }
      data.expiresAt = claims.expiresAt ?? 0;
      if (!authenticate(socket, claims.userId, claims.sessionId)) return;
      await data.ready?.catch(() => {});
      send(socket, { op: 'authenticated', userId: claims.userId }, 'authenticated');
      return;
    }
    await data.ready;
    if (data.closed) return;
    // Any first frame other than resume means the client is not resuming: deliver what was held.
    if (op !== 'resume') releaseHeld(socket);
    switch (op) {
      case 'send': {
        if (!SendFrame.check(frame)) {
          const issue = SendFrame.issues(frame, 1)[0];
          send(socket, errorFrame('invalid_request', `Invalid send frame: ${issue?.path} ${issue?.message}`, refOf(frame)), 'error');
          return;
        }
        try {
          const outcome = await handleSend(deps, socket, data.userId, frame);
          if (outcome.ok) {
            send(socket, { op: 'ack', clientMsgId: frame.clientMsgId, messageId: outcome.messageId, seq: outcome.seq }, 'ack');
            deps.typing.sent(frame.chatId, data.userId);
          }
          else send(socket, errorFrame(outcome.code, outcome.message, frame.clientMsgId), 'error');
        } catch (error) {
          if (!(error instanceof ServiceUnavailableError)) deps.log.error({ err: error }, 'send failed');
          send(socket, errorFrame('unavailable', 'Not stored; retry with the same clientMsgId', frame.clientMsgId), 'error');
        }
        return;
      }
      case 'resume': {
        if (!ResumeFrame.check(frame)) {
          const issue = ResumeFrame.issues(frame, 1)[0];
          send(socket, errorFrame('invalid_request', `Invalid resume frame: ${issue?.path} ${issue?.message}`), 'error');
          return;
        }
        try {
          await resume(socket, frame.cursors);
        } catch (error) {
          deps.log.error({ err: error }, 'resume failed');
          send(socket, errorFrame('unavailable', 'Resume failed; try again'), 'error');
        }
        return;
      }
      case 'typing': {
        if (!TypingFrame.check(frame)) {
          send(socket, errorFrame('invalid_request', 'Invalid typing frame'), 'error');
          return;
        }
        if (!data.chats.has(frame.chatId)) {
          send(socket, errorFrame('not_found', 'No such chat', frame.chatId), 'error');
          return;
        }
        deps.typing.notify(frame.chatId, data.userId);
        return;
      }
      case 'auth': {
        // A newer access token of the same session renews the socket past the old one's expiry.
        const claims = AuthFrame.check(frame) ? await deps.authenticate(frame.token) : null;
        if (!claims || claims.userId !== data.userId || claims.sessionId !== data.sessionId) {
          send(socket, errorFrame('invalid_request', 'Already authenticated; a renewal needs a valid token of the same session'), 'error');
          return;
        }
        data.expiresAt = claims.expiresAt ?? 0;
        closeAtExpiry(socket);
        send(socket, { op: 'authenticated', userId: claims.userId }, 'authenticated');
        return;
      }
      case 'read': {
        if (!ReadFrame.check(frame)) {
          send(socket, errorFrame('invalid_request', 'Invalid read frame', readRefOf(frame)), 'error');
          return;
        }
        try {
          const answer = await callRpc(
            deps.bus,
            deps.namespace,
            'messages.markRead',
            { chatId: frame.chatId, userId: data.userId, messageId: frame.messageId },
            deps.serviceTimeoutMs,
          );
          if (!answer.ok) send(socket, errorFrame(answer.code, answer.code === 'not_found' ? 'No such chat or message' : 'Invalid read frame', frame.messageId), 'error');
        } catch {
          send(socket, errorFrame('unavailable', 'Read position not stored; try again', frame.messageId), 'error');
        }
        return;
      }
      default:
        send(socket, errorFrame('unknown_op', `Unknown op ${JSON.stringify(op ?? null)}`, refOf(frame)), 'error');
    }
  };

  return {
    // uWS drops a connection abruptly (1006) above its own limit; keep that limit well above ours
    // so that an oversize frame gets a proper 1009 close (below) that the client can understand.
    maxPayloadLength: Math.max(deps.maxFrameBytes * 4, 1024 * 1024),
    idleTimeout: 120,
    // uWS's own ceiling on a socket's outgoing buffer, above ours (ChatDelivery closes at
    // maxBufferedBytes with 4008 first); it only catches what slips past that check.
    maxBackpressure: deps.maxBufferedBytes * 2,
    closeOnBackpressureLimit: 1,
    sendPingsAutomatically: true,
    upgrade: (res, req, context) => {
      const token = new URLSearchParams(req.getQuery() ?? '').get('token');
      const origin = req.getHeader('origin');
      const key = req.getHeader('sec-websocket-key');
      const protocol = req.getHeader('sec-websocket-protocol');
      const extensions = req.getHeader('sec-websocket-extensions');
      // Counted per client: an IPv6 client by its /64, as every per-address limit (clientNetwork).
      const address = clientNetwork(deps.clientAddress(normaliseAddress(Buffer.from(res.getRemoteAddressAsText()).toString()), req.getHeader('x-forwarded-for')));
      let aborted = false;
      res.onAborted(() => {
        aborted = true;
      });
      if (origin && deps.allowedOrigins.length > 0 && !deps.allowedOrigins.includes(origin)) {
        res.writeStatus('403 Forbidden').writeHeader('content-type', 'application/json');
        res.end(JSON.stringify({ error: { code: 'forbidden', message: 'Origin not allowed' } }));
        return;
      }
      const userData = (userId: string | null, sessionId: string | null, pendingAddress: string | null): SocketData => ({
        id: nextSocketId++,
        userId,
        sessionId,
        ready: null,
        closed: false,
        authTimer: null,
        expiresAt: 0,
        chain: SETTLED,
        chats: new Map(),
        notIn: null,
        gapBelow: null,
        held: null,
        holdTimer: null,
        resuming: false,
        sends: 0,
        resendWindowFrom: 0,
        tokens: deps.frameBurst,
        refilledAt: Date.now(),
        strikes: 0,
        pendingAddress,
        outbox: null,
        outboxBytes: 0,
      });
      const tooMany = (message: string) => {
        res.writeStatus('429 Too Many Requests').writeHeader('content-type', 'application/json').writeHeader('retry-after', '5');
        res.end(JSON.stringify({ error: { code: 'rate_limited', message } }));
      };
      if (token === null) {
        // Counted until it authenticates or closes: sockets nobody signs in on are cheap to open.
        if ((pending.get(address) ?? 0) >= deps.maxUnauthenticatedPerAddress) {
          tooMany('Too many unauthenticated connections from this address');
          return;
        }
        pending.set(address, (pending.get(address) ?? 0) + 1);
        res.upgrade({ state: userData(null, null, address) }, key, protocol, extensions, context);
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
          if (deps.registry.countOf(claims.userId) >= deps.maxSocketsPerUser) {
            tooMany('Too many connections for this account');
            return;
          }
          res.upgrade({ state: { ...userData(claims.userId, claims.sessionId, null), expiresAt: claims.expiresAt ?? 0 } }, key, protocol, extensions, context);
        });
      });
    },
    open: (socket) => {
      deps.metrics.websocketConnections.inc();
      const data = socket.getUserData().state;
      deps.sockets.add(socket);
      if (data.userId && data.sessionId) {
        authenticate(socket, data.userId, data.sessionId);
      } else {
        data.authTimer = setTimeout(() => {
          if (!data.closed && !data.userId) deps.delivery.outbox.end(socket, CLOSE_UNAUTHORIZED, 'authentication timeout');
        }, deps.authTimeoutSeconds * 1000);
      }
    },
    message: (socket, message, isBinary) => {
      const data = socket.getUserData().state;
      if (message.byteLength > deps.maxFrameBytes) {
        deps.metrics.websocketMessages.inc({ direction: 'in', op: 'oversize' });
        deps.delivery.outbox.end(socket, CLOSE_TOO_BIG, `frame larger than ${deps.maxFrameBytes} bytes`);
        return;
      }
      if (!allowFrame(data, Date.now())) {
        deps.metrics.websocketMessages.inc({ direction: 'in', op: 'rate_limited' });
        if (++data.strikes > MAX_STRIKES) {
          deps.delivery.outbox.end(socket, CLOSE_FLOOD, 'flooding');
          return;
        }
        send(socket, errorFrame('rate_limited', 'Too many frames; slow down'), 'error');
        return;
      }
      if (isBinary) {
        send(socket, errorFrame('invalid_request', 'Binary frames are not supported; send JSON text'), 'error');
        return;
      }
      if (deps.draining.value) {
        // Not handled, so the client resends it (same clientMsgId) on its next connection.
        send(socket, errorFrame('unavailable', 'Server shutting down; reconnect and resend', refOf(safeParse(message))), 'error');
        return;
      }
      // Decode now: uWS frees the buffer after this callback. Then chain per socket, so frames are
      // handled in order even though handling is async.
      const text = Buffer.from(message).toString('utf8');
      data.chain = data.chain.then(() => onFrame(socket, text)).catch((error: unknown) => {
        deps.log.error({ err: error }, 'frame handling failed');
      });
    },
    drain: (socket) => {
      // JS queues frames only until the end of the event-loop turn (Outbox), never for a slow
      // socket (ChatDelivery closes it instead), so there is nothing to flush here; the hook
      // exists to make that decision explicit.
      void socket;
    },
    close: (socket) => {
      const data = socket.getUserData().state;
      data.closed = true;
      const chatIds = [...data.chats.keys()];
      deps.sockets.delete(socket);
      release(data);
      deps.delivery.forget(socket);
      if (data.authTimer) clearTimeout(data.authTimer);
      if (data.holdTimer) clearTimeout(data.holdTimer);
      deps.metrics.websocketConnections.dec();
      if (data.userId) {
        deps.registry.remove(data.userId, data.sessionId, socket);
        // In turn with the set-ups: a storm of closes (a holder of thousands of sockets gone) makes
        // the same burst of requests (users.watchers, the last seen bucket) as a storm of connects.
        const userId = data.userId;
        inTurn(() => deps.presence.disconnected(userId, chatIds)).catch((error: unknown) => {
          deps.log.warn({ err: (error as Error).message }, 'presence update failed');
        });
      }
    },
  };
}

const KNOWN_OPS = new Set(['auth', 'send', 'typing', 'read', 'resume', 'ping']);
export { CLOSE_SLOW_READER };

/** The frame's JSON, or null: only for picking out a `ref` while refusing it. */
function safeParse(message: ArrayBuffer): unknown {
  try {
    return JSON.parse(Buffer.from(message).toString('utf8'));
  } catch {
    return null;
  }
}
