import type { WebSocket } from 'uWebSockets.js';

/** What the gateway keeps per socket. */
export interface SocketData {
  id: number;
  userId: string | null;
  sessionId: string | null;
  /** The socket's set-up (memberships, presence snapshot) while it runs; frames wait on it. Null before authentication and once set up. */
  ready: Promise<void> | null;
  closed: boolean;
  /** Before authentication, the authentication timeout; after it, the access token's expiry (closes with 4401). */
  authTimer: NodeJS.Timeout | null;
  /** When the access token the socket authenticated with expires (ms since the epoch; 0: unknown). */
  expiresAt: number;
  /** Frames are handled one after another per socket; this is the tail of that chain. */
  chain: Promise<void>;
  /**
   * The chats this socket receives (its user's memberships), each with the last seq delivered to
   * it (0: none yet): nothing at or below it is sent again. One map, not a set and a map: an idle
   * socket's memory is mostly its collections (docs/performance.md).
   */
  chats: Map<string, number>;
  /**
   * The same for chats the socket is not in but got events of: one it left (events held during a
   * resume, or a resume's own, may still come) or one a catch-up sends before joining it. Null
   * while there are none, as for almost every socket.
   */
  notIn: Map<string, number> | null;
  /**
   * Chats whose events reached this socket from above a seq it never got the events up to (its
   * first event of the chat came live with nothing before it, or a `reset` told it to reload up to
   * there), with that seq: a resume from below it cannot be filled in order and is answered
   * `reset`. Null while there are none, as for almost every socket (a client resumes first).
   */
  gapBelow: Map<string, number> | null;
  /**
   * Live events wait here (bounded) while a resume runs, and right after authentication until the
   * client's first frame or a short grace period: a client that resumes first must not see newer
   * live events before the older ones the resume sends.
   */
  held: HeldEvent[] | null;
  holdTimer: NodeJS.Timeout | null;
  resuming: boolean;
  /** Sends received on this socket so far: the first few are checked against earlier sends. */
  sends: number;
  /** When the socket authenticated or finished a resume (ms since the epoch; 0 before): a client's resends come right after. */
  resendWindowFrom: number;
  /** Token bucket for incoming frames (flood protection). */
  tokens: number;
  refilledAt: number;
  /** Error frames sent for rate limiting; too many and the socket is closed. */
  strikes: number;
  /** The client address while the socket is not authenticated (counted against its cap), else null. */
  pendingAddress: string | null;
  /** Frames waiting for this event-loop turn's write (Outbox), and their length. */
  outbox: string[] | null;
  outboxBytes: number;
}

export interface HeldEvent {
  chatId: string;
  seq: number;
  frame: string;
}

/**
 * What uWebSockets.js keeps for a socket: SocketData under one property. uWebSockets.js copies the
 * user data's properties onto its own socket object, and with SocketData's twenty that object
 * turns into a dictionary (a hash table of about 830 bytes per socket, measured in heap
 * snapshots); with one property it stays a fast object, and SocketData a plain literal.
 */
export interface SocketHolder {
  readonly state: SocketData;
}

export type Socket = WebSocket<SocketHolder>;

/**
 * Which users and sessions have sockets on this gateway: for delivering a chat's events to its
 * members' sockets, closing a revoked session's sockets, and counting `active_users`.
 */
export class SocketRegistry {
  private readonly byUser = new Map<string, Set<Socket>>();
  private readonly bySession = new Map<string, Set<Socket>>();

  add(userId: string, sessionId: string, socket: Socket): void {
    addTo(this.byUser, userId, socket);
    addTo(this.bySession, sessionId, socket);
  }

  remove(userId: string, sessionId: string | null, socket: Socket): void {
    removeFrom(this.byUser, userId, socket);
    if (sessionId) removeFrom(this.bySession, sessionId, socket);
  }

  socketsOf(userId: string): Iterable<Socket> {
    return this.byUser.get(userId) ?? [];
  }

  /** How many sockets the user has open on this gateway. */
  countOf(userId: string): number {
    return this.byUser.get(userId)?.size ?? 0;
  }

  /** The sockets opened with one session's tokens (closed when the session is revoked). */
  socketsOfSession(sessionId: string): Socket[] {
    return [...(this.bySession.get(sessionId) ?? [])];
  }

  userIds(): string[] {
    return [...this.byUser.keys()];
  }

  get userCount(): number {
    return this.byUser.size;
  }

}

function addTo(map: Map<string, Set<Socket>>, key: string, socket: Socket): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(socket);
}

function removeFrom(map: Map<string, Set<Socket>>, key: string, socket: Socket): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(socket);
  if (set.size === 0) map.delete(key);
}
