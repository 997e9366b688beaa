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
