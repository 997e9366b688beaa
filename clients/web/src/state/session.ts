import { Api, ApiError, RealtimeClient, newClientMsgId, storageTokens, TOKENS_KEY, type Chat, type ChatEvent, type Message, type SocketLike, type User } from '../api/index.js';
import { translate } from '../i18n.js';
import { errorText } from './errors.js';
import { applyEvent, applyToHistory, applyToSummary, upsertMessage, type EventEffects } from './events.js';
import { forgetMedia } from './media.js';
import { notify } from './notify.js';
import { changed, resetUserState, state, type PendingSend, type View } from './store.js';

/** The one API client of the page; same origin as the page (the gateway serves both). */
export const api = new Api('', storageTokens(localStorage));
let realtime: RealtimeClient | null = null;

const wsUrl = () => `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;

api.onSignedOut = () => {
  realtime?.stop();
  realtime = null;
  if (renewalTimer) clearTimeout(renewalTimer);
  renewalTimer = null;
  resetUserState();
  // Who was asked for belongs to the session: kept, the next account signed in here was never
  // asked for the people it shares, and showed them as "…".
  userRequests.clear();
  forgetMedia();
  changed();
};

/**
 * What arrived in the open chat while the tab was hidden is read when it is back: nothing marked it
 * (incomingInOpenChat only notified), and opening the chat again marked nothing either.
 */
function readOpenChatOnReturn(): void {
  if (document.visibilityState !== 'visible' || state.view.name !== 'chats' || !state.view.chatId) return;
  const last = state.history.get(state.view.chatId)?.messages.at(-1);
  const readUpTo = state.reads.get(state.view.chatId)?.get(state.me?.id ?? '') ?? 0;
  if (last && last.seq > readUpTo) markRead(last);
}
document.addEventListener('visibilitychange', readOpenChatOnReturn);

/**
 * Tabs share the tokens (localStorage), and another tab's sign-out or sign-in changes them under
 * this one. Before, a tab kept showing the account signed out elsewhere ("Reconnecting…" for
 * good) and, once someone else signed in there, sent that account's token with this account's
 * screens: a search showed the other's messages, a profile save overwrote the other's profile.
 */
window.addEventListener('storage', (event) => {
  if (event.key !== TOKENS_KEY && event.key !== null) return;
  if (!state.me) return;
  const tokens = api.tokens.load();
  if (!tokens) api.onSignedOut();
  else if (subjectOf(tokens.accessToken) !== state.me.id) location.reload();
});

/** The user an access token is for (its `sub`), or null when it cannot be read. */
function subjectOf(token: string): string | null {
  const sub = claimsOf(token)?.sub;
  return typeof sub === 'string' ? sub : null;
}

/** An access token's claims (its payload, not verified: for timing and comparing only), or null. */
function claimsOf(token: string | null): Record<string, unknown> | null {
  try {
    return JSON.parse(atob(token!.split('.')[1]!.replace(/-/g, '+').replace(/_/g, '/'))) as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** Shows an error in the page's alert region; returns undefined so callers can `return fail(e)`. */
/** How long an error stays on screen unless a newer one replaces it (issue 22: banners stayed for good). */
const ERROR_SHOWN_MS = 10_000;

export function fail(error: unknown): undefined {
  const text = errorText(state.lang, error);
  state.error = text;
  changed();
  setTimeout(() => {
    if (state.error !== text) return;
    state.error = null;
    changed();
  }, ERROR_SHOWN_MS);
  return undefined;
}

export function navigate(view: View): void {
  state.view = view;
  const hash = view.name === 'chats' && view.chatId ? `#/chat/${view.chatId}` : `#/${view.name}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
  if (view.name === 'chats' && view.chatId) void openChat(view.chatId);
  changed();
}

function viewFromHash(): View {
  const [, name, id] = location.hash.split('/');
  if (name === 'chat' && id) return { name: 'chats', chatId: id };
  if (name === 'people' || name === 'profile' || name === 'search') return { name };
  return { name: 'chats' };
}

/**
 * On page load: a stored refresh token means we are still signed in. Opened without a connection
 * (or while the gateway restarts), the session stands: the page says it is connecting and asks
 * again, with backoff and at once when the browser is back online, rather than showing the
 * sign-in form to someone who is signed in. Only the server's refusal of the session (the tokens
 * are then gone) shows that form.
 */
export async function boot(): Promise<void> {
  await followVerificationLink();
  // A reset link (from the mail) opened where someone is signed in: the reset form, not the chats,
  // which replaced the link's token with their own address and lost it. The reset ends every
  // session of the account anyway.
  if (location.pathname === '/reset-password' && api.signedIn) api.signOutLocally();
  try {
    if (api.signedIn) await startSession(await meWhenReachable());
  } catch (error) {
    fail(error);
  } finally {
    state.booting = false;
    changed();
  }
}

/** The first and the longest wait between two tries of a start that could not reach the server. */
const BOOT_RETRY_MS = [1_000, 30_000] as const;

async function meWhenReachable(): Promise<User> {
  for (let wait: number = BOOT_RETRY_MS[0]; ; wait = Math.min(wait * 2, BOOT_RETRY_MS[1])) {
    try {
      return await api.me();
    } catch (error) {
      if (!api.signedIn || !unreachable(error)) throw error;
      // Said once; "Connecting…" stays on the page meanwhile.
      if (wait === BOOT_RETRY_MS[0]) fail(error);
      await new Promise<void>((resolve) => {
        const again = () => {
          clearTimeout(timer);
          window.removeEventListener('online', again);
          resolve();
        };
        const timer = setTimeout(again, wait);
        window.addEventListener('online', again);
      });
    }
  }
}

/**
 * No answer (fetch's TypeError), a gateway or proxy that is down or restarting (5xx), or a 401
 * whose token refresh could not reach the server (the tokens are kept then: HttpApi.refresh).
 */
function unreachable(error: unknown): boolean {
  if (error instanceof TypeError) return true;
  return error instanceof ApiError && (error.status >= 500 || error.status === 401);
}

/**
 * `/verify-email#token=…` (the verification mail's link): confirm, say so, and leave the link's
 * address (the token in the fragment never reaches a server log, and must not stay in history).
 */
async function followVerificationLink(): Promise<void> {
  if (location.pathname !== '/verify-email') return;
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  history.replaceState(null, '', '/');
  if (!token) return;
  try {
    await api.verifyEmail(token);
    state.notice = translate(state.lang, 'emailVerified');
  } catch {
    state.notice = translate(state.lang, 'emailVerifyFailed');
  }
  changed();
}

export async function register(body: { username: string; email: string; password: string; displayName?: string }): Promise<void> {
  await api.register(body);
  await startSession();
}

export async function login(loginName: string, password: string): Promise<void> {
  await api.login(loginName, password);
  await startSession();
}

export async function logout(): Promise<void> {
  // Signing out on purpose leaves nothing of this account's unsent messages in the browser: not
  // the outbox, not the drafts.
  forgetUnsent();
  await api.logout().catch(() => undefined);
}

/** The account is gone: nothing of it stays in this browser, and the sign-in page says it went. */
export function accountDeleted(): void {
  forgetUnsent();
  api.signOutLocally();
  state.notice = translate(state.lang, 'accountDeleted');
  changed();
}

/** This account's outbox and every draft (kept per account and chat since; older ones per chat). */
function forgetUnsent(): void {
  if (state.me) for (const key of outboxKeys()) localStorage.removeItem(key);
  for (const key of Object.keys(localStorage)) if (key.startsWith('parley.draft.')) localStorage.removeItem(key);
}

async function startSession(me?: User): Promise<void> {
  state.me = me ?? (await api.me());
  // Drafts from before they were kept per account (`parley.draft.<chatId>`): nobody's now.
  for (const key of Object.keys(localStorage)) if (/^parley\.draft\.[0-9a-f-]{36}$/.test(key)) localStorage.removeItem(key);
  state.users.set(state.me.id, state.me);
  // Open the socket before reading the chat list, so no event between the two is missed.
  startRealtime();
  restoreOutbox();
  await Promise.all([loadChats(), loadContacts()]);
  navigate(viewFromHash());
}

/** Whether this session's socket has been connected before: the next connection is a reconnect. */
let connectedBefore = false;

function startRealtime(): void {
  connectedBefore = false;
  const effects: EventEffects = {
    unknownChat: (event) => void refreshChat(event.chatId, event),
    incomingElsewhere: announce,
    incomingInOpenChat: (message) => {
      // The open chat's list is a role="log" region that announces it itself; a hidden tab gets a
      // desktop notification (if enabled) and reads it when it is back.
      if (document.visibilityState === 'visible') return markRead(message);
      notifyOf(message);
      // Unread until the tab is back (the title counts it meanwhile): readOpenChatOnReturn.
      const chat = state.chats.get(message.chatId);
      if (chat) chat.unreadCount += 1;
    },
    pollChanged: (chatId, messageId) => setTimeout(() => void rereadPoll(chatId, messageId), 1_000),
    historyChanged: (chatId, seq) => void (state.history.has(chatId) ? reloadNewest(chatId, seq) : refreshChat(chatId)),
  };
  realtime = new RealtimeClient(
    wsUrl(),
    api.accessToken ?? '',
    {
      onEvent: (event) => {
        // Whoever was typing has sent it: stop saying so at once (issue 22: "typing" lingered for
        // the rest of its 4 s after the message arrived). Only for a message not shown yet: an
        // older one can arrive after a typing notice (a catch-up replays what history already
        // loaded), and must not end a typing that goes on.
        if (event.type === 'message.created') {
          const { id, senderId } = event.data as { id?: unknown; senderId?: unknown };
          const shown = state.history.get(event.chatId)?.messages.some((m) => m.id === id);
          if (!shown && typeof senderId === 'string') state.typing.get(event.chatId)?.delete(senderId);
        }
        for (const r of recorders) if (r.chatId === undefined || r.chatId === event.chatId) r.events.push(structuredClone(event));
        applyEvent(event, effects, state.view.name === 'chats' ? state.view.chatId : undefined);
        if (event.type === 'message.created' || event.type === 'chat.created') sortChats();
        changed();
      },
      onReset: (chatId, through) => void reloadNewest(chatId, through),
      onAck: (ack) => {
        const pending = state.pending.get(ack.clientMsgId);
        if (!pending) return;
        if (state.history.get(pending.chatId)?.messages.some((m) => m.id === ack.messageId)) state.pending.delete(ack.clientMsgId);
        else pending.messageId = ack.messageId;
        saveOutbox();
        changed();
      },
      onSendFailed: (clientMsgId, code, message) => {
        const pending = state.pending.get(clientMsgId);
        // In the interface's language, like every other error (errors.ts).
        if (pending) pending.error = errorText(state.lang, new ApiError(400, code, message));
        saveOutbox();
        changed();
      },
      onTyping: (chatId, userId) => {
        const typing = state.typing.get(chatId) ?? new Map<string, number>();
        typing.set(userId, Date.now() + 4_000);
        state.typing.set(chatId, typing);
        void ensureUser(userId);
        setTimeout(changed, 4_100);
        changed();
      },
      onPresence: (userId, online, lastSeen) => {
        state.presence.set(userId, online);
        if (lastSeen) state.lastSeen.set(userId, lastSeen);
        changed();
      },
      onProfile: (user) => {
        profileToldAt.set(user.id, ++profileClock);
        // A frame carries the public profile only: my own keeps the e-mail address it had.
        const me = state.me;
        if (me && user.id === me.id) state.me = { ...me, ...user, email: me.email };
        state.users.set(user.id, user.id === me?.id ? state.me! : { ...state.users.get(user.id), ...user });
        state.contacts = state.contacts.map((c) => (c.id === user.id ? { ...c, ...user } : c));
        changed();
      },
      onStatus: (status) => {
        const wasOffline = state.connection !== 'online';
        state.connection = status;
        // Chats with no cursor get no resume: their previews and unread counts are read again
        // after every reconnect (the first page from the server's cache).
        if (status === 'online' && connectedBefore) void loadChats();
        if (status === 'online') connectedBefore = true;
        if (status === 'offline') {
          state.announcement = translate(state.lang, 'reconnecting');
          // Without a connection nobody's presence is known (issue 22: the dot stayed green during
          // an outage); the server sends who is online again when the socket is back.
          state.presence.clear();
        }
        // After a reconnect, unread counts may have changed while resume covered the events.
        if (status === 'online' && wasOffline) state.announcement = '';
        changed();
      },
      // A failed refresh keeps the tokens unless the server refused them (then signedIn is false).
      renewToken: async () => {
        await api.refresh();
        scheduleRenewal(api.signedIn);
        return api.signedIn ? api.accessToken : null;
      },
    },
    (url) => new WebSocket(url) as unknown as SocketLike,
  );
  realtime.start();
  scheduleRenewal();
}

/** An access token's `iat` and `exp` (seconds since the epoch), or null when they cannot be read. */
function timesOf(token: string | null): { iat: number; exp: number } | null {
  const payload = claimsOf(token);
  return typeof payload?.exp === 'number' && typeof payload.iat === 'number' ? { iat: payload.iat, exp: payload.exp } : null;
}

let renewalTimer: ReturnType<typeof setTimeout> | null = null;

/**
 * Before the access token expires, refreshes the tokens and renews the open socket with the new
 * one: the gateway closes a socket whose token expired (protocol.md), and reconnecting every 15
 * minutes would cost a resume here and a set-up there. Timed by the token's own lifetime from when
 * it was issued, not by this device's clock against `exp` (a clock running ahead made a fresh token
 * look expired: a refresh every 10 s), a minute and a random half minute early (tabs of one
 * browser share the token: they take turns to refresh, HttpApi.refresh). A tab that finds a newer
 * token stored (another tab refreshed) only renews its socket with it. A refresh that fails
 * (offline) is tried again every 10 s; past the expiry the socket closes with 4401 and the
 * reconnect renews.
 */
function scheduleRenewal(fresh = false): void {
  if (renewalTimer) clearTimeout(renewalTimer);
  renewalTimer = null;
  const times = timesOf(api.accessToken);
  if (!times || !realtime) return;
  // A token this timer just got lives its whole lifetime from now. One found at start (a reload,
  // issued a while ago) lives until `exp` by this clock, if that is plausible (between now and a
  // lifetime ahead); a clock running ahead then costs one early refresh, not one every 10 s.
  const lifetime = (times.exp - times.iat) * 1000;
  const byClock = times.exp * 1000 - Date.now();
  const left = fresh || byClock <= 0 || byClock > lifetime ? lifetime : byClock;
  const renewIn = left - 60_000 - Math.random() * 30_000;
  renewalTimer = setTimeout(() => {
    renewalTimer = null;
    const stored = timesOf(api.accessToken);
    if (stored && stored.exp > times.exp && api.accessToken) {
      realtime?.renew(api.accessToken);
      scheduleRenewal(true);
      return;
    }
    renewNow();
  }, Math.max(10_000, renewIn));
}

/** Refreshes and renews the socket; a failed refresh is tried again 10 s later, not a lifetime later. */
function renewNow(): void {
  renewalTimer = null;
  void api.refresh().then((refreshed) => {
    if (refreshed && api.accessToken) realtime?.renew(api.accessToken);
    if (refreshed) scheduleRenewal(true);
    else if (realtime) renewalTimer = setTimeout(renewNow, 10_000);
  });
}

/** People whose name starts with `query`, remembered for names shown elsewhere; not the caller. */
export async function findPeople(query: string): Promise<User[]> {
  const asked = ++profileClock;
  const page = await api.findUsers(query);
  const items = page.items.map((u) => rememberUser(u, asked));
  return items.filter((u) => u.id !== state.me?.id);
}

/** Muted chats (this browser only): no announcement of their messages (issue 22). */
const mutedKey = (chatId: string) => `parley.muted.${chatId}`;
export const isMuted = (chatId: string): boolean => localStorage.getItem(mutedKey(chatId)) === '1';
export function setMuted(chatId: string, muted: boolean): void {
  if (muted) localStorage.setItem(mutedKey(chatId), '1');
  else localStorage.removeItem(mutedKey(chatId));
}

function announce(message: Message): void {
  if (isMuted(message.chatId)) return;
  const sender = state.users.get(message.senderId);
  void ensureUser(message.senderId);
  state.announcement = translate(state.lang, 'newMessages', {
    name: sender?.displayName || sender?.username || '…',
    body: message.body.slice(0, 100),
  });
  notifyOf(message);
}

/** A desktop notification for someone else's message (notify.ts decides whether one is wanted). */
function notifyOf(message: Message): void {
  if (isMuted(message.chatId)) return;
  void ensureUser(message.senderId).then(() => {
    const sender = state.users.get(message.senderId);
    const chat = state.chats.get(message.chatId);
    const name = sender?.displayName || sender?.username || '…';
    const title = chat?.type === 'group' && chat.title ? `${name} · ${chat.title}` : name;
    const body = message.body ? message.body.slice(0, 200) : message.poll ? `📊 ${message.poll.question}` : message.attachments.length ? `📎 ${message.attachments.map((a) => a.name).join(', ')}` : '';
    notify(title, body, message.chatId, () => navigate({ name: 'chats', chatId: message.chatId }));
  });
}

function sortChats(): void {
  const activity = (c: { lastMessage: Message | null; createdAt: string }) => c.lastMessage?.createdAt ?? c.createdAt;
  state.chats = new Map([...state.chats].sort(([, a], [, b]) => activity(b).localeCompare(activity(a))));
}

/**
 * Reads from the projection (a chat's page, a chat's summary, the chat list) can be older than the
 * live events that arrive while they run. Each read records the events of its chat (or of all, for
 * the list), copied as they came, since applyEvent's changes to a message are shared with the
 * event's data, and applies to what it read those that are newer.
 */
const recorders = new Set<{ chatId: string | undefined; events: ChatEvent[] }>();

async function recording<T>(chatId: string | undefined, read: (arrived: ChatEvent[]) => Promise<T>): Promise<T> {
  const recorder: { chatId: string | undefined; events: ChatEvent[] } = { chatId, events: [] };
  recorders.add(recorder);
  try {
    return await read(recorder.events);
  } finally {
    recorders.delete(recorder);
  }
}

/**
 * A chat's summary as read, with the events that arrived during the read, unless the one shown
 * knows a newer message (live events applied before the read began, which the projection may not
 * have yet): then its preview and unread count stay.
 */
function summaryOf(read: Chat, arrived: ChatEvent[]): Chat {
  for (const event of arrived) if (event.chatId === read.id) applyToSummary(read, event);
  // Read here up to its newest message, in a read the projection may not have applied yet (after
  // a reconnect, the open chat's catch-up was counted unread): nothing is unread.
  const mine = state.reads.get(read.id)?.get(state.me?.id ?? '') ?? 0;
  if (read.lastMessage && read.lastMessage.seq <= mine) read.unreadCount = 0;
  const shown = state.chats.get(read.id);
  if (shown && (shown.lastMessage?.seq ?? 0) > (read.lastMessage?.seq ?? 0)) return { ...read, lastMessage: shown.lastMessage, unreadCount: shown.unreadCount };
  return read;
}

export async function loadChats(): Promise<void> {
  await recording(undefined, async (arrived) => {
    const items = await api.all(api.chats);
    const chats = new Map(items.map((c) => [c.id, summaryOf(c, arrived)]));
    // Chats made or refreshed live while the list loaded, which it may not have yet. Any other
    // chat it lacks is one this user is no longer in (left while the socket was down).
    const live = new Set(arrived.map((e) => e.chatId));
    for (const [id, chat] of state.chats) if (!chats.has(id) && live.has(id)) chats.set(id, chat);
    // And one it has that this user was removed from during the read (unless added back since).
    for (const e of arrived) if (e.type === 'member.removed' && e.data.userId === state.me?.id && !state.chats.has(e.chatId)) chats.delete(e.chatId);
    state.chats = chats;
    for (const chat of items) for (const m of chat.members) void ensureUser(m.userId);
    sortChats();
    changed();
  });
}

/** Refreshes running, by chat: an event for a chat being refreshed is recorded by that refresh. */
const refreshes = new Map<string, Promise<void>>();

/** Reads a chat's summary; `trigger`: the event for a chat not known here that asked for it. */
function refreshChat(chatId: string, trigger?: ChatEvent): Promise<void> {
  const running = refreshes.get(chatId);
  if (running) return running;
  const refresh = recording(chatId, async (arrived) => {
    try {
      const chat = summaryOf(await api.chat(chatId), trigger ? [trigger, ...arrived] : arrived);
      // Removed while it was read (the answer may predate the removal): not shown.
      const mine = arrived.filter((e) => (e.type === 'member.removed' || e.type === 'member.added') && e.data.userId === state.me?.id).at(-1);
      if (mine?.type === 'member.removed') return;
      state.chats.set(chat.id, chat);
      for (const m of chat.members) void ensureUser(m.userId);
      sortChats();
      changed();
    } catch {
      // Not (or no longer) a member: nothing to show.
    }
  }).finally(() => refreshes.delete(chatId));
  refreshes.set(chatId, refresh);
  return refresh;
}

export async function loadContacts(): Promise<void> {
  const asked = ++profileClock;
  const contacts = await api.all(api.contacts);
  state.contacts = contacts.map((user) => rememberUser(user, asked));
  changed();
}

/**
 * Profiles read over HTTP and profiles told live can cross: a read sent before a `profile` frame
 * may be answered after it, with the name from before the change, and it used to overwrite the new
 * one until the next reload (e2e/web-messenger.test.ts, "changes names live", failed now and then
 * in CI that way). So each frame and each read takes a tick of one counter, and a read answers
 * only for users no frame has told of since it was sent.
 */
let profileClock = 0;
const profileToldAt = new Map<string, number>();
/** Keeps `user` as read by a request sent at tick `asked`, unless a live frame is newer; returns what is kept. */
function rememberUser(user: User, asked: number): User {
  const known = state.users.get(user.id);
  if (known && (profileToldAt.get(user.id) ?? 0) > asked) return known;
  state.users.set(user.id, user);
  return user;
}

const userRequests = new Map<string, Promise<void>>();
/** Fetches a profile once per page load, for names in chats. */
export function ensureUser(id: string): Promise<void> {
  if (state.users.has(id)) return Promise.resolve();
  let request = userRequests.get(id);
  if (!request) {
    const asked = ++profileClock;
    request = api.user(id).then(
      (user) => {
        rememberUser(user, asked);
        changed();
      },
      () => undefined,
    );
    userRequests.set(id, request);
  }
  return request;
}

/**
 * Loads the newest page of a chat, replacing what was loaded (a reset, a poll count change). After a
 * reset the page must reach `through` (history is a projection and may trail the socket): it is
 * asked again, a little later each time, until it does. Live messages newer than the page stay.
 */
export async function reloadNewest(chatId: string, through = 0): Promise<void> {
  await recording(chatId, async (arrived) => {
    try {
      // A reload that failed would leave a hole for good: live delivery has moved on past it, and
      // the next resume will not reset again. So an unavailable server is asked again too.
      let page = await newestPage(chatId);
      for (let attempt = 0; page.seq < through && attempt < 8; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, 250 * 2 ** attempt));
        page = await newestPage(chatId);
      }
      const newer = (state.history.get(chatId)?.messages ?? []).filter((m) => m.seq > page.seq);
      state.history.set(chatId, { messages: [...page.items.slice().reverse(), ...newer], older: page.nextCursor });
      // What came live while the page loaded (e2e/web.test.ts, "shows what arrived live while a
      // chat's first page was loading").
      replayOnto(chatId, page.seq, arrived, newer);
      // The page holds the chat up to its seq: a resume after a dropped connection must start there,
      // or what was sent while the socket was down would never come (a chat with no live event yet
      // had no cursor, so no resume).
      realtime?.cursors.advance(chatId, page.seq);
      // Who has read how far (issue 22: "Read" became "Sent" after a reload); live positions that
      // arrived meanwhile are newer or equal, so the larger one wins. Best effort.
      const reads = await api.reads(chatId).catch(() => null);
      if (reads) {
        const known = state.reads.get(chatId) ?? new Map<string, number>();
        for (const { userId, seq } of reads.items) known.set(userId, Math.max(known.get(userId) ?? 0, seq));
        state.reads.set(chatId, known);
      }
      await refreshChat(chatId);
      changed();
    } catch (error) {
      fail(error);
    }
  });
}

/**
 * Applies to a chat's page, once it is in, the live events recorded while it was read that are
 * newer than it (`pageSeq`). Messages `kept` from before the read took those events live.
 */
function replayOnto(chatId: string, pageSeq: number, arrived: ChatEvent[], kept: Message[]): void {
  const tookThem = new Set(kept.map((m) => m.id));
  for (const event of arrived) {
    if (event.seq <= pageSeq || !applyToHistory(event, tookThem)) continue;
    if (event.type === 'poll.voted') void rereadPoll(chatId, String(event.data.messageId));
  }
}

/** The newest page, asked again with growing pauses (up to about a minute) while the server is unavailable. */
async function newestPage(chatId: string): ReturnType<typeof api.messages> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await api.messages(chatId);
    } catch (error) {
      const transient = !(error instanceof ApiError) || error.status >= 500;
      if (!transient || attempt >= 8) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 250 * 2 ** attempt)));
    }
  }
}

/**
 * The cursor of the older page each poll shown was read in (polls of the newest page have none), so
 * that rereadPoll asks that page: a live vote that changes an earlier choice cannot be counted
 * here (the page gives counts, not who chose what), and a poll on an older page kept the wrong
 * counts (e2e/web.test.ts, "corrects the counts of a poll on an older page").
 */
const pollPages = new Map<string, string>();
/** Pages a poll's re-read reads at most, from where it starts. */
const MAX_POLL_PAGES = 10;

/**
 * Replaces one poll's counts with the server's (the projection trails the live event by a moment,
 * hence the delay). Only the poll is replaced, so live events that arrived meanwhile stay.
 */
async function rereadPoll(chatId: string, messageId: string): Promise<void> {
  const shown = state.history.get(chatId)?.messages.find((m) => m.id === messageId);
  if (!shown?.poll) return;
  try {
    // The page it was read in (a cursor names a fixed page), else the newest; then older pages
    // while they can still hold it (newer messages push a poll off the newest page).
    let before = pollPages.get(messageId);
    for (let pages = 0; pages < MAX_POLL_PAGES; pages++) {
      const page = await api.messages(chatId, before);
      const fresh = page.items.find((m) => m.id === messageId);
      if (fresh?.poll) {
        shown.poll = fresh.poll;
        changed();
        return;
      }
      const oldest = page.items.at(-1);
      if (!page.nextCursor || !oldest || oldest.seq <= shown.seq) return;
      before = page.nextCursor;
    }
  } catch {
    // The live counts stay; the next reload corrects them.
  }
}

export async function openChat(chatId: string): Promise<void> {
  // The divider belongs to the visit: another chat opened forgets it.
  for (const id of state.unreadFrom.keys()) if (id !== chatId) state.unreadFrom.delete(id);
  if (!state.history.has(chatId)) await reloadNewest(chatId);
  const chat = state.chats.get(chatId);
  const messages = state.history.get(chatId)?.messages ?? [];
  const last = messages.at(-1);
  if (chat && last && chat.unreadCount > 0) {
    // "Unread messages" above the first of them: the newest unreadCount messages of others.
    const others = messages.filter((m) => m.senderId !== state.me?.id);
    const first = others.at(-Math.min(chat.unreadCount, others.length));
    if (first) state.unreadFrom.set(chatId, first.seq);
    // Not from a tab nobody looks at (a link opened in the background): readOpenChatOnReturn
    // marks it when the tab is shown. Before, the sender saw "Read" for what nobody had seen.
    if (document.visibilityState === 'visible') markRead(last);
  }
}

export async function loadOlder(chatId: string): Promise<void> {
  const history = state.history.get(chatId);
  if (!history?.older) return;
  const older = history.older;
  await recording(chatId, async (arrived) => {
    const page = await api.messages(chatId, older);
    // A reset may have replaced the history meanwhile: this page belongs to the one it was asked for.
    if (state.history.get(chatId) !== history) return;
    const kept = [...history.messages];
    history.older = page.nextCursor;
    for (const m of page.items) {
      upsertMessage(m);
      if (m.poll) pollPages.set(m.id, older);
    }
    // An edit, reaction or deletion of one of these messages that came live while they were read.
    replayOnto(chatId, page.seq, arrived, kept);
    changed();
  });
}

export function markRead(message: Message): void {
  const chat = state.chats.get(message.chatId);
  if (chat) chat.unreadCount = 0;
  // My own position, for summaries read before the server has it (summaryOf); others' show as "Read".
  const reads = state.reads.get(message.chatId) ?? new Map<string, number>();
  if (state.me) reads.set(state.me.id, Math.max(reads.get(state.me.id) ?? 0, message.seq));
  state.reads.set(message.chatId, reads);
  realtime?.read(message.chatId, message.id);
  changed();
}

export function sendMessage(chatId: string, body: string, replyTo?: string, attachmentIds?: string[]): void {
  // Answering means the unread part was read: the divider goes.
  state.unreadFrom.delete(chatId);
  const clientMsgId = newClientMsgId();
  const frame = { chatId, clientMsgId, body, ...(replyTo ? { replyTo } : {}), ...(attachmentIds?.length ? { attachmentIds } : {}) };
  state.pending.set(clientMsgId, { ...frame, createdAt: new Date().toISOString() });
  saveOutbox();
  realtime?.send(frame);
  changed();
}

/**
 * The sends not yet acknowledged, and those refused, kept across a reload (issue 22: a failed send
 * was gone on reload): per user in localStorage. Unacknowledged ones are sent again on start with
 * their clientMsgId, so one that was stored after all is acked, not doubled.
 *
 * Each page load keeps its own (`parley.outbox.<userId>.<load>`): with one key per user, two tabs
 * of one account each wrote only their own sends, and the tab that saved last dropped the other's
 * from it; a tab closed before its send was acked lost it. A start adopts every outbox of the
 * account (a closed tab's, an earlier load's, one written before this scheme without the suffix)
 * into its own, then removes those: a tab still open keeps its sends in memory and writes them
 * again with its next change, and a send held by two tabs is acked to both as one message.
 */
const pageLoad = newClientMsgId();
const outboxPrefix = () => `parley.outbox.${state.me?.id ?? ''}`;
const outboxKey = () => `${outboxPrefix()}.${pageLoad}`;
const outboxKeys = () => Object.keys(localStorage).filter((key) => key === outboxPrefix() || key.startsWith(`${outboxPrefix()}.`));

function saveOutbox(): void {
  if (!state.me) return;
  const open = [...state.pending.values()].filter((p) => !p.messageId);
  if (open.length === 0) localStorage.removeItem(outboxKey());
  else localStorage.setItem(outboxKey(), JSON.stringify(open));
}

/** An outbox as stored under `key`; empty when it is missing or unreadable. */
function readOutbox(key: string): PendingSend[] {
  try {
    return JSON.parse(localStorage.getItem(key) ?? '[]') as PendingSend[];
  } catch {
    return [];
  }
}

function restoreOutbox(): void {
  const adopted = outboxKeys().filter((key) => key !== outboxKey());
  for (const key of adopted) {
    for (const p of readOutbox(key)) {
      if (state.pending.has(p.clientMsgId)) continue;
      state.pending.set(p.clientMsgId, p);
      if (!p.error) realtime?.send(frameOf(p));
    }
  }
  // Kept under this load's key before the others go, so a crash in between loses nothing.
  saveOutbox();
  for (const key of adopted) localStorage.removeItem(key);
}

const frameOf = (p: PendingSend) => ({ chatId: p.chatId, clientMsgId: p.clientMsgId, body: p.body, ...(p.replyTo ? { replyTo: p.replyTo } : {}), ...(p.attachmentIds?.length ? { attachmentIds: p.attachmentIds } : {}) });

/** Sends a refused message again, with the same clientMsgId (the refusal may have passed: an unblock, a fixed file). */
export function retrySend(clientMsgId: string): void {
  const p = state.pending.get(clientMsgId);
  if (!p) return;
  delete p.error;
  saveOutbox();
  realtime?.send(frameOf(p));
  changed();
}

/** Drops a refused message from the outbox: this page's, and any other tab's that adopted it. */
export function discardSend(clientMsgId: string): void {
  state.pending.delete(clientMsgId);
  saveOutbox();
  for (const key of outboxKeys()) {
    if (key === outboxKey()) continue;
    const saved = readOutbox(key);
    const left = saved.filter((p) => p.clientMsgId !== clientMsgId);
    if (left.length === saved.length) continue;
    if (left.length === 0) localStorage.removeItem(key);
    else localStorage.setItem(key, JSON.stringify(left));
  }
  changed();
}

export function sendTyping(chatId: string): void {
  realtime?.typing(chatId);
}
