import type { WebSocket } from 'uWebSockets.js';

/** What the gateway keeps per socket. */
export interface SocketData {
  id: number;
  userId: string | null;
  sessionId: string | null;
  /** Resolves once the socket is authenticated and subscribed to its chats; frames wait on it. */
  ready: Promise<void> | null;
  closed: boolean;
  authTimer: NodeJS.Timeout | null;
  /** Frames are handled one after another per socket; this is the tail of that chain. */
  chain: Promise<void>;
}

export type Socket = WebSocket<SocketData>;

export const chatTopic = (chatId: string) => `chat:${chatId}`;

/**
 * Which users have sockets on this gateway. Delivery itself uses uWebSockets.js topics (one per
 * chat, subscribed per socket), which fan a frame out in native code; this registry is for
 * subscribing all of a user's sockets when they join a chat, and for `active_users`.
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

  /** The sockets opened with one session's tokens (closed when the session is revoked). */
  socketsOfSession(sessionId: string): Socket[] {
    return [...(this.bySession.get(sessionId) ?? [])];
  }

  get userCount(): number {
    return this.byUser.size;
  }

  all(): Socket[] {
    return [...this.byUser.values()].flatMap((s) => [...s]);
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
