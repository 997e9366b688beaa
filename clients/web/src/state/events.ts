import type { Chat, ChatEvent, Message } from '../api/index.js';
import { state } from './store.js';

/** Inserts or replaces a message in a loaded history, keeping ascending seq order. */
export function upsertMessage(message: Message): void {
  const history = state.history.get(message.chatId);
  if (!history) return;
  const list = history.messages;
  const at = list.findIndex((m) => m.id === message.id);
  if (at >= 0) list[at] = message;
  else {
    list.push(message);
    list.sort((a, b) => a.seq - b.seq);
  }
}

function findMessage(chatId: string, messageId: string): Message | undefined {
  return state.history.get(chatId)?.messages.find((m) => m.id === messageId);
}

/**
 * Applies a change to the message on the loaded page and to the chat list's preview. The two are
 * separate objects (applyEvent copies a live message for the preview): patches that count, such as
 * a reaction, must run once on each, not twice on one.
 */
function patchMessage(chatId: string, messageId: string, patch: ((m: Message) => void) | undefined): void {
  if (!patch) return;
  const message = findMessage(chatId, messageId);
  if (message) patch(message);
  const chat = state.chats.get(chatId);
  if (chat?.lastMessage?.id === messageId && chat.lastMessage !== message) patch(chat.lastMessage);
}

/** pollId → voter → their current choice, as learned from events on this page. */
const choices = new Map<string, Map<string, string[]>>();

/**
 * Events carry a voter's current choice, not counts: move that voter's votes from the choice seen
 * before (if this page saw one) to the new one. A voter who changed a vote cast before this page
 * loaded is counted twice until the HTTP re-read that follows every vote corrects it.
 */
function countVote(message: Message, userId: string, optionIds: string[]): void {
  const poll = message.poll!;
  const voters = choices.get(poll.id) ?? new Map<string, string[]>();
  choices.set(poll.id, voters);
  for (const id of voters.get(userId) ?? []) {
    const option = poll.options.find((o) => o.id === id);
    if (option) option.votes = Math.max(0, option.votes - 1);
  }
  for (const id of optionIds) {
    const option = poll.options.find((o) => o.id === id);
    if (option) option.votes += 1;
  }
  voters.set(userId, optionIds);
}

export interface EventEffects {
  /** An event of a chat this client does not know yet: fetch the chat (and apply the event to it). */
  unknownChat(event: ChatEvent): void;
  /** A message for the chat on screen: mark it read. */
  incomingInOpenChat(message: Message): void;
  /** A message for another chat, or while the page is hidden. */
  incomingElsewhere(message: Message): void;
  /** Another member voted: re-read the poll over HTTP a little later, to correct the counts. */
  pollChanged(chatId: string, messageId: string): void;
  /**
   * Messages went at once (an erased member's, purged): read the chat again, from a history that
   * has the event at `seq` (the projection may trail the socket).
   */
  historyChanged(chatId: string, seq: number): void;
}

/**
 * Applies one chat event (already deduplicated by chatId+seq) to the state. Every branch is safe
 * to repeat: a message is upserted by id, edits and deletions set values.
 */
export function applyEvent(event: ChatEvent, effects: EventEffects, openChatId: string | undefined): void {
  const me = state.me?.id;
  const chat = state.chats.get(event.chatId);
  if (!chat && event.type !== 'chat.created') {
    // Removed from a chat this page does not know (yet): nothing to fetch or show. Fetched, the
    // chat could come back from a projection that has not applied the removal, and stay listed.
    if (event.type === 'member.removed' && event.data.userId === me) return;
    effects.unknownChat(event);
    return;
  }
  const data = event.data;
  switch (event.type) {
    case 'chat.created':
      state.chats.set(event.chatId, data as unknown as Chat);
      return;
    case 'message.created': {
      const message = data as unknown as Message;
      upsertMessage(message);
      chat!.lastMessage = structuredClone(message);
      for (const [id, p] of state.pending) if (p.messageId === message.id) state.pending.delete(id);
      if (message.senderId === me) return;
      if (openChatId === event.chatId) effects.incomingInOpenChat(message);
      else {
        chat!.unreadCount += 1;
        effects.incomingElsewhere(message);
      }
      return;
    }
    case 'message.edited':
    case 'message.deleted':
    case 'reaction.added':
    case 'reaction.removed':
      patchMessage(event.chatId, String(data.messageId), messageChange(event, me));
      return;
    case 'poll.voted':
      patchMessage(event.chatId, String(data.messageId), messageChange(event, me));
      if (data.userId !== me && data.closed !== true) effects.pollChanged(event.chatId, String(data.messageId));
      return;
    case 'chat.updated':
      // A rename carries the title; a retention pass's expiry (MessagesExpired) carries
      // `historyExpiredUpToSeq` instead: the chat's messages up to it are gone (protocol.md).
      if (typeof data.title === 'string') chat!.title = data.title;
      cutHistory(event);
      cutSummary(chat!, event);
      return;
    case 'member.added':
      if (!chat!.members.some((m) => m.userId === data.userId)) chat!.members.push({ userId: String(data.userId), role: String(data.role) });
      return;
    case 'member.removed':
      if (data.userId === me) {
        state.chats.delete(event.chatId);
        state.history.delete(event.chatId);
      } else {
        chat!.members = chat!.members.filter((m) => m.userId !== data.userId);
        // An erased account whose messages, reactions and votes went with it: theirs leave the
        // screen and the list's preview now (a preview newer than the server's answer is kept as
        // live, so theirs would have stayed), and the chat is read again for the rest.
        if (cutHistory(event)) {
          cutSummary(chat!, event);
          effects.historyChanged(event.chatId, event.seq);
        }
      }
      return;
    case 'read.updated': {
      const reads = state.reads.get(event.chatId) ?? new Map<string, number>();
      reads.set(String(data.userId), Number(data.seq));
      state.reads.set(event.chatId, reads);
      if (data.userId === me && chat!.lastMessage && Number(data.seq) >= chat!.lastMessage.seq) chat!.unreadCount = 0;
      return;
    }
    default: {
      const never: never = event.type;
      return never;
    }
  }
}

/**
 * What an event about one message changes in it (the same on the loaded page and in the preview);
 * undefined for an event that is not about one message.
 */
function messageChange(event: ChatEvent, me: string | undefined): ((m: Message) => void) | undefined {
  const data = event.data;
  switch (event.type) {
    case 'message.edited':
      return (m) => {
        // An edit that raced the deletion comes after it (the server drops it from the stream):
        // a deleted message shows no text.
        if (m.deletedAt) return;
        m.body = String(data.body);
        m.editedAt = String(data.editedAt);
      };
    case 'message.deleted':
      return (m) => {
        m.body = '';
        m.deletedAt = String(data.deletedAt);
        m.attachments = [];
        m.reactions = [];
      };
    case 'reaction.added':
    case 'reaction.removed': {
      const add = event.type === 'reaction.added';
      const mine = data.userId === me;
      return (m) => {
        const r = m.reactions.find((x) => x.emoji === data.emoji);
        // My own reaction was already applied from the HTTP answer when `me` says so.
        if (mine && r && r.me === add) return;
        if (r) {
          r.count += add ? 1 : -1;
          if (mine) r.me = add;
          if (r.count <= 0) m.reactions = m.reactions.filter((x) => x !== r);
        } else if (add) m.reactions.push({ emoji: String(data.emoji), count: 1, me: mine });
      };
    }
    case 'poll.voted':
      return (m) => {
        if (!m.poll) return;
        if (data.closed === true) m.poll.closed = true;
        else if (data.userId !== me) countVote(m, String(data.userId), (data.optionIds as string[]) ?? []);
      };
    default:
      return undefined;
  }
}

/**
 * Which of a chat's messages an event takes away at once, if it is such an event: a retention
 * pass's expiry (`chat.updated` with `historyExpiredUpToSeq`: those up to that seq) or an erased
 * member's removal with their messages (`member.removed` with `purged`: theirs). protocol.md.
 */
function takenAway(event: ChatEvent): ((m: Message) => boolean) | undefined {
  const data = event.data;
  if (event.type === 'chat.updated' && typeof data.historyExpiredUpToSeq === 'number') {
    const upTo = data.historyExpiredUpToSeq;
    return (m) => m.seq <= upTo;
  }
  if (event.type === 'member.removed' && data.purged === true) return (m) => m.senderId === data.userId;
  return undefined;
}

/** Drops from the chat's loaded page what `event` took away; answers whether it is such an event. */
function cutHistory(event: ChatEvent): boolean {
  const gone = takenAway(event);
  if (!gone) return false;
  const history = state.history.get(event.chatId);
  if (history) history.messages = history.messages.filter((m) => !gone(m));
  return true;
}

/**
 * Drops a chat's preview if `event` took it away (with its unread count: what is left was read or
 * went too); answers whether it is such an event. An erased member's preview keeps the count,
 * since the chat is read again for the rest.
 */
function cutSummary(chat: Chat, event: ChatEvent): boolean {
  const gone = takenAway(event);
  if (!gone) return false;
  if (chat.lastMessage && gone(chat.lastMessage)) {
    chat.lastMessage = null;
    if (event.type === 'chat.updated') chat.unreadCount = 0;
  }
  return true;
}

/**
 * Applies an event that arrived while the chat's page was loading to the page, once it is in
 * (session.ts, replayOnto). The page is read from the projection, which can trail the socket, so
 * such an event may be newer than the page; applyEvent had no page to put it in. Only what the page
 * holds changes here: the chat list took the event when it arrived, and so did the messages in
 * `tookIt` (kept on the page from before the load). `event` must be a copy taken before applyEvent
 * ran, since applyEvent's changes to a message are shared with the event's data. Answers whether
 * it changed the page.
 */
export function applyToHistory(event: ChatEvent, tookIt: ReadonlySet<string>): boolean {
  // A page read before an expiry or an erasure was projected still holds what they took away.
  if (cutHistory(event)) return true;
  if (event.type === 'message.created') {
    const message = event.data as unknown as Message;
    if (tookIt.has(message.id)) return false;
    upsertMessage(message);
    return true;
  }
  const change = messageChange(event, state.me?.id);
  if (!change) return false;
  const messageId = String(event.data.messageId);
  const message = findMessage(event.chatId, messageId);
  if (!message || tookIt.has(messageId)) return false;
  // A vote moves counts from the voter's choice seen before, which the live event already
  // recorded: the caller re-reads the poll instead (a closing is safe to repeat).
  if (event.type === 'poll.voted') {
    if (event.data.closed === true && message.poll) message.poll.closed = true;
  } else change(message);
  return true;
}

/**
 * Applies to a chat's summary read from the projection an event that arrived while the read ran,
 * if the summary does not have it yet: a newer message (the preview, and the unread count when it
 * is someone else's) or my own read position reaching the newest message.
 */
export function applyToSummary(chat: Chat, event: ChatEvent): void {
  const me = state.me?.id;
  if (cutSummary(chat, event)) return;
  // An edit or deletion of the message the summary shows (the read may predate it; setting values
  // twice is harmless, unlike counting a reaction twice). Before, a list read again after a
  // reconnect brought back the text of a last message deleted meanwhile.
  if ((event.type === 'message.edited' || event.type === 'message.deleted') && chat.lastMessage?.id === String(event.data.messageId)) {
    messageChange(event, me)?.(chat.lastMessage);
    return;
  }
  if (event.type === 'message.created') {
    const message = event.data as unknown as Message;
    if (message.seq <= (chat.lastMessage?.seq ?? 0)) return;
    chat.lastMessage = structuredClone(message);
    if (message.senderId !== me) chat.unreadCount += 1;
  } else if (event.type === 'read.updated' && event.data.userId === me && chat.lastMessage && Number(event.data.seq) >= chat.lastMessage.seq) {
    chat.unreadCount = 0;
  }
}
