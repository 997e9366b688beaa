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

  add(userId: string, socket: Socket): void {
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(socket);
  }

  remove(userId: string, socket: Socket): void {
    const set = this.byUser.get(userId);
    if (!set) return;
    set.delete(socket);
    if (set.size === 0) this.byUser.delete(userId);
  }

  socketsOf(userId: string): Iterable<Socket> {
    return this.byUser.get(userId) ?? [];
  }

  get userCount(): number {
    return this.byUser.size;
  }

  all(): Socket[] {
    return [...this.byUser.values()].flatMap((s) => [...s]);
  }
}
