import { JetStreamApiCodes, JetStreamApiError } from '@nats-io/jetstream';
import type { KV } from '@nats-io/kv';
import type { Subscription } from '@nats-io/transport-node';
import { callRpc, openBucket, whileJetStreamStarts, type Bus } from '@parley/bus';
import { declaredBuckets, isId, MAX_SETUP_BATCH, newId, PRESENCE_KEY_TTL_MS, subjects } from '@parley/contracts';
import type { Logger } from '@parley/log';
import type { Metrics } from '@parley/telemetry';
import type { ChatDelivery } from './delivery.js';
import { GatewayRoster } from './gateway-roster.js';
import { askInParts } from './in-parts.js';
import { isLastSeen, LastSeen } from './last-seen.js';
import type { Socket, SocketRegistry } from './registry.js';

/**
 * Keys of users still connected here are written again this often, well inside the bucket's TTL
 * (PRESENCE_KEY_TTL_MS), which is a safety net only: a key goes when its user's last socket here
 * closes (removeKey), or when this gateway stops, cleanly (stop) or not (the gateways that outlive
 * it reap it: reapGone, and reapUnheralded for a gateway of an older release, which did not say it
 * was alive); the TTL catches what none of them did.
 */
const KEY_REFRESH_MS = 20 * 60_000;
/** A gateway whose last heartbeat is this many heartbeats old, by the server's clock, is gone. */
const BEATS_TO_GONE = 3;
/**
 * Gateways of releases before 2026-12-07 write no `gw.` key: they keep their users' keys alive by
 * writing each again every 10 s, under a TTL of 30 s in their day. One whose key is this old has
 * stopped without closing its sockets (reapUnheralded).
 */
const UNHERALDED_KEY_GONE_MS = 30_000;
/** Presence work on many users at once (a reaped gateway's users, a refresh) goes this many at a time. */
const IN_FLIGHT = 16;
/**
 * The whole bucket is listed this often per gateway, as a safety net: every transition is announced
 * (also when its audience is unknown), and a gateway lists again after a NATS reconnect, when it
 * may have missed notices. What is left for this listing to correct is a gateway that removed a key
 * and died before it announced. A listing is O(users online): at 15 s, as before 2026-12-07, it was
 * 330,000 key deliveries a second with 500,000 users on 10 gateways; at 5 min, 17,000.
 */
const COUNT_EVERY_MS = 5 * 60_000;
/**
 * Chat peer ids one users.presenceVisibleMany request carries (about 94 KB of JSON), unless one
 * viewer alone has more (at most 5,000): under glibc's mmap threshold, as SETUP_ANSWER_BYTES.
 */
const PEERS_PER_REQUEST = 1_200;

/**
 * A gateway's hello on `<ns>.presence.gateways`, at start and after a reaping of it: the others
 * check its keys and its beats from now on (sayHello).
 */
interface Hello {
  gatewayHello: string;
}
const HELLO_SUBJECT_TOKEN = 'gateways';

interface Notice {
  userId: string;
  online: boolean;
  chatIds: string[];
  watcherIds: string[];
  /** Users the one announced blocked: not told, even as chat peers. */
  blocked?: string[];
  /** Going offline only, when the user lets anyone see their presence: when (ISO 8601, UTC). */
  lastSeen?: string;
}

/**
 * Cluster-wide presence. Each gateway keeps one NATS KV key per (user, gateway) while the user has
 * sockets on it. A user is online while any of their keys exists, so several devices on several
 * gateways count once. The heartbeat is the gateway's, not each user's: every PRESENCE_HEARTBEAT_MS
 * a gateway writes its own key `gw.<gatewayId>` and reads the others'; one whose key is
 * BEATS_TO_GONE beats old by the server's timestamps is gone (crashed, or cut off), and the live
 * gateway with the smallest id reaps it: removes its keys in one purge and announces offline those
 * of its users connected nowhere else, last seen at its last beat. So writes per beat are one per
 * gateway, not one per user online (docs/decisions.md, "Presence in a NATS KV bucket").
 * Whether a user is connected elsewhere is a get of their key per other gateway (heldElsewhere):
 * each an O(1) lookup on the server, where any filtered request scans every key of the bucket.
 * Transitions are announced on core NATS (`<ns>.presence.<userId>`) with the user's chats and
 * watchers (users who have them as a contact); every gateway forwards the notice to its sockets in
 * those chats or of those watchers. `active_users` counts distinct users across all gateways.
 * Going offline also records the time (LastSeen), carried by the offline notice and sent in later
 * snapshots to the same audience as presence itself.
 */
export class Presence {
  private kv: KV | undefined;
  private sub: Subscription | undefined;
  private timers: NodeJS.Timeout[] = [];
  /**
   * Users online anywhere, as this gateway knows it: the bucket's keys at each count (COUNT_EVERY_MS,
   * and after a NATS reconnect), kept current in between by this gateway's own users and the
   * notices every gateway receives.
   * What a new socket is shown when it connects (snapshot), and the `active_users` gauge.
   */
  private readonly online = new Set<string>();
  /** Users with a socket set up here since their sockets here last all closed: announced, keyed here. */
  private readonly keyed = new Set<string>();
  readonly gatewayId = newId();
  private readonly lastSeen: LastSeen;
  /** The stream sequence of this gateway's last heartbeat: a beat expects it, so a reaping is noticed. */
  private beatSeq = 0;
  private beating = false;
  /** At this gateway's last beat: whether it is the one that reaps, and the server's time of that beat (ms). */
  private reaper = false;
  private lastBeatAt = 0;
  private refreshedAt = Date.now();
  /** While a count lists the bucket: the transitions seen meanwhile, applied over its result. */
  private duringCount: Map<string, boolean> | undefined;
  /** A count was asked for while one ran (which may have listed before a reconnect): run again after it. */
  private countAgain = false;
  /** The other gateways: whose keys heldElsewhere looks at, and whose beats gatewayBeats reads. */
  private readonly roster: GatewayRoster;
  private stopped = false;

  constructor(
    private readonly deps: {
      bus: Bus;
      namespace: string;
      registry: SocketRegistry;
      delivery: ChatDelivery;
      log: Logger;
      metrics: Metrics;
      serviceTimeoutMs: number;
      /** STREAM_REPLICAS: the presence and last seen buckets' copies. */
      replicas: number;
      /** PRESENCE_HEARTBEAT_MS: how often this gateway says it is alive and looks for gateways gone. */
      heartbeatMs: number;
    },
  ) {
    this.lastSeen = new LastSeen(deps);
    // Kept BEATS_TO_GONE + 1 beats after the last sight, so one reaped or stopped is still checked (harmlessly) until then.
    this.roster = new GatewayRoster(this.gatewayId, (BEATS_TO_GONE + 1) * deps.heartbeatMs);
  }

  private key(userId: string): string {
    return `${userId}.${this.gatewayId}`;
  }

  async start(): Promise<void> {
    this.kv = await whileJetStreamStarts('creating the presence bucket', () => openBucket(this.deps.bus.nc, declaredBuckets(this.deps.namespace, this.deps.replicas).presence), this.deps.log);
    await this.keepKeysForTheTtl();
    await whileJetStreamStarts('creating the last-seen bucket', () => this.lastSeen.start(), this.deps.log);
    this.sub = this.deps.bus.nc.subscribe(subjects.allPresence(this.deps.namespace), {
      callback: (err, msg) => {
        if (err) return;
        try {
          const notice = msg.json<Notice | Hello>();
          if ('gatewayHello' in notice) this.greeted(notice);
          else this.forward(notice);
        } catch {
          // Not JSON: not from a gateway of ours. Ignore.
        }
      },
    });
    await this.discoverGateways();
    await this.beat(); // alive before the first socket: no other gateway may take it for gone
    this.sayHello();
    this.timers.push(setInterval(() => void this.beat(), this.deps.heartbeatMs), setInterval(() => void this.count(), COUNT_EVERY_MS));
    void this.count(); // who is online already, for the first snapshots
    for (const t of this.timers) t.unref();
    void this.countAfterReconnects();
  }

  /**
   * Notices are core NATS: those published while this gateway was cut off from NATS never reach
   * it. Its subscription is back after a reconnect, so one listing then brings the set up to date.
   */
  private async countAfterReconnects(): Promise<void> {
    for await (const status of this.deps.bus.nc.status()) {
      if (this.stopped) return;
      if (status.type === 'reconnect') void this.count();
    }
  }

  /**
   * Tells sockets that just connected who among the users they may watch is online now (issue 22:
   * whoever connected second never saw the first online), and when those offline were last seen,
   * if that is known. The audience rules are the notices' own, seen from the watcher's side
   * (users.presenceVisibleMany), so last seen reaches exactly whoever may see the user's presence.
   * One batch of set-ups (ws/setup.ts) is asked about together. Best effort: without an answer the
   * sockets get no snapshot, and live notices still come.
   */
  async snapshots(entries: { socket: Socket; userId: string; peerIds: string[] }[]): Promise<void> {
    // Short waits: the sockets' first frames wait for this, and presence is not worth more.
    const timeoutMs = Math.min(this.deps.serviceTimeoutMs, 1_000);
    const peersOf = new Map(entries.map((e) => [e.userId, e.peerIds]));
    const visible = await this.visibleTo(peersOf, timeoutMs);
    const offline = new Set<string>();
    for (const ids of visible.values()) for (const other of ids) if (!this.online.has(other)) offline.add(other);
    const stored = await this.lastSeen.read([...offline], timeoutMs);
    let sent = 0;
    for (const { socket, userId } of entries) {
      const data = socket.getUserData().state;
      for (const other of visible.get(userId) ?? []) {
        if (data.closed) break;
        // Read now, not before the calls: a notice that arrived meanwhile has already updated it
        // (and LastSeen.newest has its time, should the bucket have been read before the write).
        const online = this.online.has(other);
        const lastSeen = online ? undefined : this.lastSeen.newest(other, stored.get(other));
        if (!online && lastSeen === undefined) continue; // offline, and no time known
        this.deps.delivery.outbox.send(socket, JSON.stringify(online ? { op: 'presence', userId: other, online } : { op: 'presence', userId: other, online, lastSeen }));
        sent += 1;
      }
    }
    if (sent > 0) this.deps.metrics.websocketMessages.inc({ direction: 'out', op: 'presence' }, sent);
  }

  /**
   * Whose presence each viewer may see, of their contacts and chat peers: requests of at most
   * MAX_SETUP_BATCH viewers and about PEERS_PER_REQUEST chat peers (so a request stays far below
   * NATS's payload limit), each asked again for the viewers its answer stopped short of.
   */
  private async visibleTo(peersOf: Map<string, string[]>, timeoutMs: number): Promise<Map<string, string[]>> {
    const viewers = [...peersOf].map(([viewerId, chatPeerIds]) => ({ viewerId, chatPeerIds }));
    const answers = await askInParts(
      viewers,
      fittingViewers,
      async (part) => (await callRpc(this.deps.bus, this.deps.namespace, 'users.presenceVisibleMany', { viewers: part }, timeoutMs)).userIds,
      'users.presenceVisibleMany',
    );
    return new Map(viewers.map((viewer, i) => [viewer.viewerId, answers[i]!]));
  }

  /**
   * A socket of `userId` is ready (its chats known). Announces the user if they just came online:
   * at the first socket of theirs set up here, not when they hold one socket. Sockets join the
   * registry when they authenticate, before their set-up: two that authenticated together (two
   * tabs, a phone and a laptop reconnecting after a gateway restart) were both the second when set
   * up, so the user was never announced and had no key until the keys' refresh.
   */
  async connected(socket: Socket, userId: string): Promise<void> {
    this.markOnline(userId);
    if (this.keyed.has(userId) || !this.kv) return;
    this.keyed.add(userId);
    try {
      await this.kv.put(this.key(userId), '1');
    } catch (error) {
      this.keyed.delete(userId); // the user's next socket tries again
      throw error;
    }
    if (!(await this.heldElsewhere(userId))) await this.announce(userId, true, [...socket.getUserData().state.chats.keys()]);
  }

  /** The last socket of `userId` on this gateway closed. Announces the user if they are now offline everywhere. */
  async disconnected(userId: string, chatIds: string[]): Promise<void> {
    if (countOf(this.deps.registry.socketsOf(userId)) !== 0 || !this.kv) return;
    this.keyed.delete(userId);
    const at = new Date().toISOString(); // the close itself, not whenever the calls below finish
    await this.removeKey(userId).catch(() => {});
    if (!(await this.heldElsewhere(userId))) await this.wentOffline(userId, chatIds, at);
  }

  /**
   * Records the last seen time, then announces. Written before users.watchers is asked, and
   * removed unless the answer lets someone see it. That order is what makes erasure complete: the
   * erasure purges the time once the account's row is gone, and from then on users.watchers
   * answers as for `nobody`; a time written before that purge goes with it, one written after is
   * followed by that answer and removed here (docs/decisions.md).
   */
  private async wentOffline(userId: string, chatIds: string[], at: string): Promise<void> {
    await this.lastSeen.record(userId, at).catch((error: unknown) => {
      this.deps.log.warn({ err: (error as Error).message }, 'last seen not recorded');
    });
    const shown = await this.announce(userId, false, chatIds, at);
    if (shown) return;
    await this.lastSeen.forget(userId).catch((error: unknown) => {
      this.deps.log.warn({ err: (error as Error).message }, 'hidden last seen not removed');
    });
  }

  /**
   * The gauge follows the set as it changes: a recount of the whole bucket after transitions, as
   * before 2026-12-07, listed every key about once a second per gateway in a storm of connects.
   */
  private markOnline(userId: string): void {
    this.online.add(userId);
    this.duringCount?.set(userId, true);
    this.deps.metrics.activeUsers.set(this.online.size);
  }

  private markOffline(userId: string): void {
    this.online.delete(userId);
    this.duringCount?.set(userId, false);
    this.deps.metrics.activeUsers.set(this.online.size);
  }

  private get stream(): string {
    return `KV_${subjects.presenceBucket(this.deps.namespace)}`;
  }

  private subjectOf(key: string): string {
    return `$KV.${subjects.presenceBucket(this.deps.namespace)}.${key}`;
  }

  /**
   * Whether another gateway holds a key of `userId`: one get of `<userId>.<gatewayId>` per gateway
   * known (the roster), in parallel. Each is a lookup of one subject, which the server
   * answers in constant time; a request filtered by `<userId>.*` (as before 2026-12-07) made it
   * match every key of the bucket: on NATS 2.9, 1.8 ms of its CPU per count with 20,000 keys and
   * 16-24 ms with 100,000 (`bench/presence-count.mjs`, docs/performance.md). Asked of the stream's leader
   * (STREAM.MSG.GET), not by a direct get, which any replica may answer before it has a put that
   * was just acknowledged.
   */
  private async heldElsewhere(userId: string): Promise<boolean> {
    const held = await Promise.all(this.roster.all().map((gatewayId) => this.exists(`${userId}.${gatewayId}`)));
    return held.includes(true);
  }

  /**
   * Whether the bucket has `key` (getMessage answers null for no message). A delete marker, which
   * gateways before 2026-12-06 left when a user's socket closed, is no key.
   */
  private async exists(key: string): Promise<boolean> {
    const stored = await this.deps.bus.jsm.streams.getMessage(this.stream, { last_by_subj: this.subjectOf(key) });
    return stored !== null && !stored.header?.get('KV-Operation');
  }

  /** A gateway said hello: its keys count from now on. */
  private greeted(hello: Hello): void {
    if (isId(hello.gatewayHello)) this.roster.note([hello.gatewayHello]);
  }

  /** Removes this gateway's key of `userId` without a delete marker (a listing would count one). */
  private async removeKey(userId: string): Promise<void> {
    await this.purgeKeys(this.key(userId));
  }

  /** The keys matching `pattern` (NATS wildcards): one stream-info request, the subjects without the bucket's prefix. */
  private async keysUnder(pattern: string): Promise<string[]> {
    const info = await this.deps.bus.jsm.streams.info(this.stream, { subjects_filter: this.subjectOf(pattern) });
    const prefix = this.subjectOf('');
    return Object.keys(info.state.subjects ?? {}).map((subject) => subject.slice(prefix.length));
  }

  /** Removes the keys matching `pattern` in one purge, leaving no marker. */
  private async purgeKeys(pattern: string): Promise<void> {
    await this.deps.bus.jsm.streams.purge(this.stream, { filter: this.subjectOf(pattern) });
  }

  /**
   * Publishes the transition to its audience. Returns whether anyone may see the user's presence
   * (false for `nobody`, an unknown or erased user, or no answer), i.e. whether `lastSeen` went out.
   */
  private async announce(userId: string, online: boolean, chatIds: string[], lastSeen?: string): Promise<boolean> {
    let audience: { userIds: string[]; chatPeers: boolean; blocked: string[] };
    try {
      audience = await callRpc(this.deps.bus, this.deps.namespace, 'users.watchers', { userId }, this.deps.serviceTimeoutMs);
    } catch (error) {
      // Without the user's privacy settings no socket is told: presence is best effort, privacy is
      // not. The gateways still are (a notice with no audience), so their online sets stay true
      // without waiting for a listing of the bucket.
      this.deps.log.warn({ err: (error as Error).message }, 'presence watchers unavailable: the transition is told to the gateways only, no socket');
      audience = { userIds: [], chatPeers: false, blocked: [] };
    }
    // users.watchers answers chatPeers false exactly for `nobody` (and for no such user).
    const shown = audience.chatPeers;
    const notice: Notice = { userId, online, chatIds: shown ? chatIds : [], watcherIds: audience.userIds, blocked: audience.blocked };
    if (shown && lastSeen !== undefined) notice.lastSeen = lastSeen;
    this.deps.bus.nc.publish(subjects.presence(this.deps.namespace, userId), JSON.stringify(notice));
    return shown;
  }

  private forward(notice: Notice): void {
    if (!isId(notice?.userId) || typeof notice.online !== 'boolean') return;
    if (notice.online) this.markOnline(notice.userId);
    else if (countOf(this.deps.registry.socketsOf(notice.userId)) === 0) this.markOffline(notice.userId);
    const targets = new Set<Socket>();
    for (const chatId of notice.chatIds ?? []) for (const s of this.deps.delivery.socketsIn(chatId)) targets.add(s);
    for (const watcher of notice.watcherIds ?? []) for (const s of this.deps.registry.socketsOf(watcher)) targets.add(s);
    const blocked = new Set(notice.blocked ?? []);
    const lastSeen = !notice.online && isLastSeen(notice.lastSeen) ? notice.lastSeen : undefined;
    if (lastSeen !== undefined) this.lastSeen.noted(notice.userId, lastSeen);
    const frame = JSON.stringify(lastSeen === undefined ? { op: 'presence', userId: notice.userId, online: notice.online } : { op: 'presence', userId: notice.userId, online: false, lastSeen });
    let sent = 0;
    for (const socket of targets) {
      const data = socket.getUserData().state;
      if (data.closed || data.userId === notice.userId || (data.userId !== null && blocked.has(data.userId))) continue;
      this.deps.delivery.outbox.send(socket, frame);
      sent += 1;
    }
    if (sent > 0) this.deps.metrics.websocketMessages.inc({ direction: 'out', op: 'presence' }, sent);
  }

  /**
   * A bucket made by a release that refreshed every user's key every 10 s has a 30 s TTL, and keys
   * written every KEY_REFRESH_MS would expire between refreshes. The users service raises it at its
   * start (ensureBuckets); so does the gateway where its authorization still allows the update (one
   * generated before 2026-12-07, when the gateway owned the bucket). Otherwise it says so and waits
   * for users: it may no longer change the bucket.
   */
  private async keepKeysForTheTtl(): Promise<void> {
    const maxAge = PRESENCE_KEY_TTL_MS * 1_000_000; // nanoseconds
    const info = await this.deps.bus.jsm.streams.info(this.stream);
    if (info.config.max_age === 0 || info.config.max_age >= maxAge) return;
    await this.deps.bus.jsm.streams.update(this.stream, { max_age: maxAge }).then(
      () => this.deps.log.info({ stream: this.stream }, 'presence keys now live for the refresh period'),
      (error: unknown) =>
        this.deps.log.warn({ err: (error as Error).message, stream: this.stream, maxAgeSeconds: info.config.max_age / 1e9 }, 'the presence bucket keeps keys shorter than their refresh period, and this gateway may not change it: start the users service, which does'),
    );
  }

  private failed(what: string): (error: unknown) => void {
    return (error) => this.deps.log.warn({ err: (error as Error).message }, what);
  }

  /** One heartbeat: this gateway's key, its users' keys if they were reaped or are due, then gateways gone. */
  private async beat(): Promise<void> {
    const kv = this.kv;
    if (!kv || this.beating) return;
    this.beating = true;
    try {
      if (await this.sayAlive(kv)) await this.restoreKeys(kv);
      else if (Date.now() - this.refreshedAt >= KEY_REFRESH_MS) await this.refreshKeys(kv);
      await this.reapGone(kv);
    } catch (error) {
      this.deps.log.warn({ err: (error as Error).message }, 'presence heartbeat failed');
    } finally {
      this.beating = false;
    }
  }

  /**
   * Writes this gateway's key, expecting the sequence of its last write. Returns true if the key
   * had gone meanwhile: another gateway took this one for gone (a stall or a cut to NATS longer
   * than BEATS_TO_GONE beats) and removed its users' keys.
   */
  private async sayAlive(kv: KV): Promise<boolean> {
    const key = gatewayKey(this.gatewayId);
    if (this.beatSeq === 0) {
      this.beatSeq = await kv.put(key, '');
      return false;
    }
    try {
      this.beatSeq = await kv.put(key, '', { previousSeq: this.beatSeq });
      return false;
    } catch (error) {
      if (!(error instanceof JetStreamApiError && error.code === JetStreamApiCodes.StreamWrongLastSequence)) throw error;
      this.beatSeq = await kv.put(key, '');
      return true;
    }
  }

  /**
   * Tells the other gateways this one is here, so that they look at its keys and its beats from
   * now on: a user who connects here and leaves another gateway must not be announced offline by
   * it. Said at start, and again after a reaping (they may have forgotten this gateway).
   */
  private sayHello(): void {
    const hello: Hello = { gatewayHello: this.gatewayId };
    this.deps.bus.nc.publish(subjects.presence(this.deps.namespace, HELLO_SUBJECT_TOKEN), JSON.stringify(hello));
  }

  /**
   * The other gateways, from their `gw.` keys: one stream-info request filtered to `gw.*`, which
   * the server answers by matching every key of the bucket, so only at start and in each listing
   * (count); in between gateways are known by their hello and followed by their keys (gatewayBeats).
   */
  private async discoverGateways(): Promise<void> {
    this.roster.note((await this.keysUnder(gatewayKey('*'))).map((key) => key.slice(GATEWAY_KEY_PREFIX.length)));
  }

  /** After a reaping: this gateway's users' keys again, and online notices for those the reaping announced offline. */
  private async restoreKeys(kv: KV): Promise<void> {
    this.deps.log.warn('this gateway was taken for gone (no heartbeat for too long): announcing its users again');
    this.sayHello();
    this.refreshedAt = Date.now();
    await inParallel(this.deps.registry.userIds(), async (userId) => {
      const socket = firstOf(this.deps.registry.socketsOf(userId));
      if (!socket) return;
      await kv.put(this.key(userId), '1');
      if (!(await this.heldElsewhere(userId))) await this.announce(userId, true, [...socket.getUserData().state.chats.keys()]);
    }, this.failed('presence key not restored'));
  }

  /** The keys of users connected here, written again inside PRESENCE_KEY_TTL_MS. */
  private async refreshKeys(kv: KV): Promise<void> {
    this.refreshedAt = Date.now();
    await inParallel(this.deps.registry.userIds(), async (userId) => {
      // A user whose last socket closed during this loop has had their key removed: not again.
      if (countOf(this.deps.registry.socketsOf(userId)) === 0) return;
      await kv.put(this.key(userId), '1');
    }, this.failed('presence key not refreshed'));
  }

  /**
   * Reaps the gateways whose heartbeat is BEATS_TO_GONE beats old. Only the live gateway with the
   * smallest id does, so a gone gateway's users are announced offline once; the ages are
   * differences of the server's own timestamps (this gateway's beat just written is "now"), so the
   * gateways' clocks do not matter.
   */
  private async reapGone(kv: KV): Promise<void> {
    const beats = await this.gatewayBeats(kv);
    this.roster.note(beats.keys());
    this.roster.forgetUnseen();
    const now = beats.get(this.gatewayId);
    if (now === undefined) return;
    const goneAfter = BEATS_TO_GONE * this.deps.heartbeatMs;
    const gone = [...beats].filter(([, at]) => now - at >= goneAfter);
    const alive = [...beats.keys()].filter((id) => now - beats.get(id)! < goneAfter).sort();
    this.lastBeatAt = now;
    this.reaper = alive[0] === this.gatewayId;
    if (!this.reaper) return;
    for (const [gatewayId, at] of gone) await this.reap(gatewayId, at);
  }

  /**
   * The last heartbeat of this gateway and of each other it knows, by the server's timestamp (ms):
   * a get per gateway, each a lookup of one subject (a stream-info request filtered to `gw.*`, as
   * before 2026-12-07, matched every key of the bucket, every beat on every gateway).
   */
  private async gatewayBeats(kv: KV): Promise<Map<string, number>> {
    const ids = [this.gatewayId, ...this.roster.beating()];
    const entries = await Promise.all(ids.map((id) => kv.get(gatewayKey(id))));
    const beats = new Map<string, number>();
    ids.forEach((id, i) => {
      const entry = entries[i];
      if (entry?.operation === 'PUT') beats.set(id, entry.created.getTime());
    });
    return beats;
  }

  /**
   * A gateway gone without closing its sockets: its keys go in one purge (its users' and its
   * own), then each of its users connected nowhere else is announced offline, last seen at the
   * gone gateway's last heartbeat (when it last vouched for them).
   */
  private async reap(gatewayId: string, lastBeat: number): Promise<void> {
    const keys = `*.${gatewayId}`;
    const userIds = (await this.keysUnder(keys)).map((key) => key.slice(0, key.indexOf('.'))).filter(isId);
    await this.purgeKeys(keys);
    this.deps.log.warn({ gatewayId, users: userIds.length }, 'a gateway stopped without closing its sockets: its users are offline unless connected elsewhere');
    const at = new Date(lastBeat).toISOString();
    await inParallel(userIds, async (userId) => {
      // Connected here, or on another gateway.
      if (countOf(this.deps.registry.socketsOf(userId)) > 0 || (await this.heldElsewhere(userId))) return;
      const { chatIds } = await callRpc(this.deps.bus, this.deps.namespace, 'messages.memberships', { userId }, this.deps.serviceTimeoutMs);
      await this.wentOffline(userId, chatIds, at);
    }, this.failed('offline notice of a gone gateway\'s user not sent'));
  }

  /**
   * Who is online anywhere, from the bucket: distinct users with a key, plus this gateway's own
   * (their keys may be in flight). Corrects what the notices missed (core NATS is at most once).
   * The listing takes a while with many keys, and a key it passed may go or come before it ends:
   * the transitions seen meanwhile are applied over its result, so none of them is undone.
   */
  private async count(): Promise<void> {
    if (!this.kv) return;
    if (this.duringCount) {
      this.countAgain = true;
      return;
    }
    const kv = this.kv;
    const users = new Set<string>();
    /** Gateways with users' keys but no `gw.` key of their own, each with one of its keys. */
    const unheralded = new Map<string, string>();
    const heralded = new Set<string>();
    const seen = (this.duringCount = new Map());
    try {
      for await (const key of await kv.keys()) {
        if (key.startsWith(GATEWAY_KEY_PREFIX)) {
          heralded.add(key.slice(GATEWAY_KEY_PREFIX.length));
          continue;
        }
        const dot = key.indexOf('.');
        users.add(key.slice(0, dot));
        if (!unheralded.has(key.slice(dot + 1))) unheralded.set(key.slice(dot + 1), key);
      }
    } catch {
      return; // the set stays as the notices made it
    } finally {
      this.duringCount = undefined;
      if (this.countAgain && !this.stopped) {
        this.countAgain = false;
        setImmediate(() => void this.count());
      }
    }
    for (const userId of this.deps.registry.userIds()) users.add(userId);
    for (const [userId, online] of seen) {
      if (online) users.add(userId);
      else users.delete(userId);
    }
    this.online.clear();
    for (const userId of users) this.online.add(userId);
    this.deps.metrics.activeUsers.set(this.online.size);
    for (const gatewayId of [...heralded, this.gatewayId]) unheralded.delete(gatewayId);
    this.roster.setOlder(unheralded.keys());
    this.roster.note(heralded); // one whose hello this gateway missed
    if (this.reaper && unheralded.size > 0) await this.reapUnheralded(kv, unheralded).catch(this.failed('gateways of an older release not checked'));
  }

  /**
   * A gateway of an older release (no `gw.` key) that crashed is reaped like a gone gateway of
   * this one once its key is UNHERALDED_KEY_GONE_MS old, the TTL its release gave keys: its users'
   * keys would otherwise outlive it by PRESENCE_KEY_TTL_MS. Only found by a listing (count), so this takes
   * up to COUNT_EVERY_MS; it matters only while a rolling upgrade runs.
   */
  private async reapUnheralded(kv: KV, keyOf: Map<string, string>): Promise<void> {
    for (const [gatewayId, key] of keyOf) {
      // A gateway of this release whose beat replaced its key while the listing ran: not unheralded.
      if ((await kv.get(gatewayKey(gatewayId)))?.operation === 'PUT') continue;
      const entry = await kv.get(key);
      if (entry?.operation !== 'PUT') continue;
      const writtenAt = entry.created.getTime();
      if (this.lastBeatAt - writtenAt >= UNHERALDED_KEY_GONE_MS) await this.reap(gatewayId, writtenAt);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    await this.sub?.drain().catch(() => {});
    // This gateway's users are no longer connected here (other gateways keep theirs), and it is
    // not gone but stopped: its keys and its own go in one purge, so nobody reaps it.
    if (this.kv) await this.purgeKeys(`*.${this.gatewayId}`).catch(() => {});
  }
}

/** How many of the viewers left go in the next request: at most MAX_SETUP_BATCH, and PEERS_PER_REQUEST chat peers unless the first alone has more. */
function fittingViewers(rest: { chatPeerIds: string[] }[]): number {
  let peers = rest[0]!.chatPeerIds.length;
  let size = 1;
  while (size < rest.length && size < MAX_SETUP_BATCH && peers + rest[size]!.chatPeerIds.length <= PEERS_PER_REQUEST) peers += rest[size++]!.chatPeerIds.length;
  return size;
}

/** Gateways' own keys: `gw.<gatewayId>` (users' keys are `<userId>.<gatewayId>`). */
const GATEWAY_KEY_PREFIX = 'gw.';
function gatewayKey(gatewayId: string): string {
  return `${GATEWAY_KEY_PREFIX}${gatewayId}`;
}

/** Runs `work` on every item, IN_FLIGHT at a time; a failure is the item's own (told to `failed`), not the others'. */
async function inParallel<T>(items: T[], work: (item: T) => Promise<void>, failed: (error: unknown) => void): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await work(items[next++]!).catch(failed);
  };
  await Promise.all(Array.from({ length: Math.min(IN_FLIGHT, items.length) }, lane));
}

function firstOf<T>(items: Iterable<T>): T | undefined {
  for (const item of items) return item;
  return undefined;
}

function countOf(items: Iterable<unknown>): number {
  let n = 0;
  for (const _ of items) n += 1;
  return n;
}
