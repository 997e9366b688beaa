import type { Chat, User } from '../api/index.js';
import { translate, type Key } from '../i18n.js';
import { state } from '../state/store.js';

/** Interface text in the current language. */
export function t(key: Key, params?: Record<string, string | number>): string {
  return translate(state.lang, key, params);
}

export function nameOf(userId: string): string {
  if (userId === state.me?.id) return t('you');
  const user: User | undefined = state.users.get(userId);
  return user ? user.displayName || user.username : '…';
}

/** A group's title, or the other person's name in a direct chat. */
export function chatTitle(chat: Chat): string {
  if (chat.type === 'group') return chat.title ?? '';
  const other = chat.members.find((m) => m.userId !== state.me?.id);
  return other ? nameOf(other.userId) : t('you');
}

export function peerOf(chat: Chat): string | undefined {
  return chat.type === 'direct' ? chat.members.find((m) => m.userId !== state.me?.id)?.userId : undefined;
}

export function time(iso: string): string {
  return new Date(iso).toLocaleTimeString(state.lang, { hour: '2-digit', minute: '2-digit' });
}

/** A local calendar day, as a key. */
export function dayOf(iso: string): string {
  const d = new Date(iso);
  return `${d.getFullYear()}-${d.getMonth()}-${d.getDate()}`;
}

/** "Today", "Yesterday", or the date in the interface's language. */
export function dayLabel(iso: string): string {
  const now = new Date();
  const yesterday = new Date(now.getFullYear(), now.getMonth(), now.getDate() - 1).toISOString();
  if (dayOf(iso) === dayOf(now.toISOString())) return t('today');
  if (dayOf(iso) === dayOf(yesterday)) return t('yesterday');
  return new Date(iso).toLocaleDateString(state.lang, { day: 'numeric', month: 'long', year: 'numeric' });
}

export function formatSize(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** Saves a Blob as a file through a temporary object URL. */
export function saveBlob(blob: Blob, name: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** "last seen just now", "… 5 minutes ago", "… today at 10:05", "… on 3 December at 10:05". */
export function lastSeenText(iso: string, now = Date.now()): string {
  const at = Date.parse(iso);
  const minutes = Math.floor((now - at) / 60_000);
  if (minutes < 1) return t('lastSeenJustNow');
  if (minutes < 60) return t('lastSeen', { when: new Intl.RelativeTimeFormat(state.lang, { numeric: 'always' }).format(-minutes, 'minute') });
  if (dayOf(iso) === dayOf(new Date(now).toISOString())) return t('lastSeenAt', { when: time(iso) });
  return t('lastSeenOn', { day: new Date(iso).toLocaleDateString(state.lang, { day: 'numeric', month: 'long' }), when: time(iso) });
}
