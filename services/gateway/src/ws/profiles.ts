import type { Subscription } from '@nats-io/transport-node';
import { Type, type Static } from '@sinclair/typebox';
import { callRpc, type Bus } from '@parley/bus';
import { compile, subjects, Uuid, type UserView } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { ChatDelivery } from './delivery.js';
import type { Socket, SocketRegistry } from './registry.js';

/**
 * A public profile as GET /users/:id answers it, and nothing more: the notice is checked against
 * it on receipt, so a notice carrying an e-mail (or anything else) is dropped, not forwarded.
 */
const PublicProfile = Type.Object(
  {
    id: Uuid,
    username: Type.String({ maxLength: 64 }),
    displayName: Type.String({ maxLength: 64 }),
    bio: Type.String({ maxLength: 500 }),
    avatarUrl: Type.Union([Type.String({ maxLength: 2048 }), Type.Null()]),
    createdAt: Type.String({ maxLength: 40 }),
  },
  { additionalProperties: false },
);

const NoticeSchema = Type.Object(
  {
    user: PublicProfile,
    /** The user's chats: the sockets in them are told (empty when the user hides their activity). */
    chatIds: Type.Array(Uuid),
    /** Users who have the user as a contact and may see their activity (users.watchers). */
    watcherIds: Type.Array(Uuid),
    /** Users the one who changed blocked: never told, chat peers or not. */
    blocked: Type.Array(Uuid),
  },
  { additionalProperties: false },
);
type Notice = Static<typeof NoticeSchema>;
const validNotice = compile(NoticeSchema);

/**
 * Live profile changes (issue 22): when a user changes their display name, bio or avatar, the people
 * who see them get `{"op":"profile","user":<public profile>}` at once instead of the old name until
 * a reload. Built like presence (ws/presence.ts), because a live frame says "this person is active
 * now" just as a presence notice does: the audience is the presence audience (users.watchers, by the
 * user's `presence` setting, never anyone they blocked), plus the user's own sockets (their other
 * devices). The gateway that carried the change computes it and publishes one notice on core NATS
 * (`<ns>.profile.<userId>`); every gateway forwards it to its sockets in those chats or of those
 * users. Best effort: a notice lost in a NATS hiccup is corrected by the client's next load of the
 * profile. If the audience cannot be read, only the user's own devices are told (privacy first).
 */
export class Profiles {
  private sub: Subscription | undefined;
  /** Per user, the latest change this gateway is computing an audience for (see changed()). */
  private readonly latest = new Map<string, number>();
  private tickets = 0;

  constructor(
    private readonly deps: {
      bus: Bus;
      namespace: string;
      registry: SocketRegistry;
      delivery: ChatDelivery;
      log: Logger;
      metrics: Metrics;
      serviceTimeoutMs: number;
    },
  ) {}

  start(): void {
    this.sub = this.deps.bus.nc.subscribe(subjects.allProfiles(this.deps.namespace), {
      callback: (err, msg) => {
        if (err) return;
        let received: unknown;
        try {
          received = msg.json();
        } catch {
          return; // Not JSON: not from a gateway of ours.
        }
        // Only a gateway may publish here (contracts permissions.ts), and still: a notice that is
        // not exactly this shape, or whose subject names someone else, is dropped.
        if (!validNotice.check(received) || msg.subject !== subjects.profile(this.deps.namespace, received.user.id)) return;
        this.forward(received);
      },
    });
  }

  /**
   * The users service answered a PATCH /users/me of `user.id` with a real change (ApiResponse
   * .profileChanged). Publishes the notice once the audience is known. Two quick changes of one
   * user must not arrive in the wrong order (the older name would stay): if a newer change began
   * while this one's audience was being read, this one is dropped and the newer one is told.
   */
  async changed(user: UserView): Promise<void> {
    const ticket = ++this.tickets;
    this.latest.set(user.id, ticket);
    const audience = await this.audience(user.id);
    if (this.latest.get(user.id) !== ticket) return;
    this.latest.delete(user.id);
    const { id, username, displayName, bio, avatarUrl, createdAt } = user;
    // Field by field: whatever else a profile view may carry (an e-mail) never goes out.
    const published: Notice = { user: { id, username, displayName, bio, avatarUrl, createdAt }, ...audience };
    try {
      this.deps.bus.nc.publish(subjects.profile(this.deps.namespace, id), JSON.stringify(published));
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'profile notice not published');
    }
  }

  /** Who besides the user's own sockets is told: the presence audience, read now. */
  private async audience(userId: string): Promise<Pick<Notice, 'chatIds' | 'watcherIds' | 'blocked'>> {
    const timeoutMs = this.deps.serviceTimeoutMs;
    try {
      const watchers = await callRpc(this.deps.bus, this.deps.namespace, 'users.watchers', { userId }, timeoutMs);
      // `presence: nobody`: chatPeers false and no watchers; the chats are not even asked for.
      const chatIds = watchers.chatPeers ? (await callRpc(this.deps.bus, this.deps.namespace, 'messages.memberships', { userId }, timeoutMs)).chatIds : [];
      return { chatIds, watcherIds: watchers.userIds, blocked: watchers.blocked };
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'profile audience unavailable; only the user\'s own sockets are told');
      return { chatIds: [], watcherIds: [], blocked: [] };
    }
  }

  private forward(notice: Notice): void {
    const targets = new Set<Socket>(this.deps.registry.socketsOf(notice.user.id));
    for (const chatId of notice.chatIds) for (const s of this.deps.delivery.socketsIn(chatId)) targets.add(s);
    for (const watcher of notice.watcherIds) for (const s of this.deps.registry.socketsOf(watcher)) targets.add(s);
    const blocked = new Set(notice.blocked);
    const frame = JSON.stringify({ op: 'profile', user: notice.user });
    let sent = 0;
    for (const socket of targets) {
      const data = socket.getUserData().state;
      if (data.closed || data.userId === null || blocked.has(data.userId)) continue;
      this.deps.delivery.outbox.send(socket, frame);
      sent += 1;
    }
    if (sent > 0) this.deps.metrics.websocketMessages.inc({ direction: 'out', op: 'profile' }, sent);
  }

  async stop(): Promise<void> {
    await this.sub?.drain().catch(() => {});
  }
}
