import { useLayoutEffect, useState } from 'preact/hooks';
import type { ConnectionStatus } from '../api/index.js';
import type { Chat, Message, User } from '../api/index.js';
import type { Lang } from '../i18n.js';

/** A message this client sent that the chat does not show yet (no ack, or ack before the event). */
export interface PendingSend {
  clientMsgId: string;
  chatId: string;
  body: string;
  replyTo?: string;
  attachmentIds?: string[];
  messageId?: string;
  error?: string;
  createdAt: string;
}

export type View = { name: 'chats'; chatId?: string; /** A message to show and highlight (search, a reply's quote). */ messageId?: string } | { name: 'people' } | { name: 'profile' } | { name: 'search' };

export interface State {
  lang: Lang;
  me: User | null;
  /** True until a stored session was checked on start. */
  booting: boolean;
  view: View;
  connection: ConnectionStatus;
  chats: Map<string, Chat>;
  /** Loaded history per chat, ascending seq; `older` is the cursor for the previous page. */
  history: Map<string, { messages: Message[]; older: string | null }>;
  pending: Map<string, PendingSend>;
  users: Map<string, User>;
  contacts: User[];
  presence: Map<string, boolean>;
  /** userId → when they were last online (ISO), from presence frames and profiles. */
  lastSeen: Map<string, string>;
  /** chatId → the seq of the first message that was unread when the chat was opened (the divider). */
  unreadFrom: Map<string, number>;
  /** The image open in the viewer. */
  viewer: { id: string; name: string } | null;
  /** chatId → userId → when the typing notice expires (ms). */
  typing: Map<string, Map<string, number>>;
  /** chatId → userId → read position (seq), as seen live. */
  reads: Map<string, Map<string, number>>;
  /** The text of the aria-live region (new incoming messages, connection changes). */
  announcement: string;
  error: string | null;
  /** A visible message that is not an error (a confirmed e-mail address), until dismissed. */
  notice: string | null;
}

/**
 * One mutable state object and a change counter. Modules change `state` and call `changed()`;
 * components re-render through `useAppState()`. Maps are mutated in place, so components must not
 * memoise on their identity.
 */
export const state: State = {
  lang: 'en',
  me: null,
  booting: true,
  view: { name: 'chats' },
  connection: 'offline',
  chats: new Map(),
  history: new Map(),
  pending: new Map(),
  users: new Map(),
  contacts: [],
  presence: new Map(),
  lastSeen: new Map(),
  unreadFrom: new Map(),
  viewer: null,
  typing: new Map(),
  reads: new Map(),
  announcement: '',
  error: null,
  notice: null,
};

const listeners = new Set<() => void>();
let scheduled = false;
let version = 0;

/** Schedules one re-render for any number of changes in the same task. */
export function changed(): void {
  if (scheduled) return;
  scheduled = true;
  queueMicrotask(() => {
    scheduled = false;
    version++;
    for (const listener of listeners) listener();
  });
}

export function useAppState(): State {
  const [, setSeen] = useState(version);
  useLayoutEffect(() => {
    const listener = () => setSeen(version);
    listeners.add(listener);
    // A change between the first render and this subscription would otherwise be missed.
    listener();
    return () => void listeners.delete(listener);
  }, []);
  return state;
}

/** Clears everything that belongs to a signed-in user (logout, expired session, deletion). */
export function resetUserState(): void {
  state.me = null;
  state.chats.clear();
  state.history.clear();
  state.pending.clear();
  state.users.clear();
  state.contacts = [];
  state.presence.clear();
  state.lastSeen.clear();
  state.unreadFrom.clear();
  state.viewer = null;
  state.typing.clear();
  state.reads.clear();
  state.view = { name: 'chats' };
  // The screen reader's last announcement named this account's messages ("New message from …").
  state.announcement = '';
  state.error = null;
}
