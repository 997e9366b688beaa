import { state } from '../state/store.js';
import { nameOf } from './common.js';

/**
 * Background colours for initials: each keeps white text at 4.5:1 or more (WCAG 2.1 AA) in both
 * colour schemes, and the colour follows the user id, so a person looks the same everywhere.
 */
const COLOURS = ['#1e5aa8', '#7b3fa0', '#a23b3b', '#2f6f4f', '#865700', '#00707a', '#9c2f6e', '#4a5563'];

function colourOf(id: string): string {
  let h = 0;
  for (let i = 0; i < id.length; i++) h = (h * 31 + id.charCodeAt(i)) >>> 0;
  return COLOURS[h % COLOURS.length]!;
}

/** Up to two letters of a name ("Anna Karenina" → "AK", "борис" → "Б"). */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/u).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => [...w][0] ?? '');
  return letters.join('').toLocaleUpperCase() || '?';
}

/**
 * A round picture for a person or a group: initials on a colour. A profile's `avatarUrl` is not
 * loaded: it may point anywhere, and the page's CSP loads images only from this origin (a remote
 * image would tell a third party who reads which chat, and when).
 */
export function Avatar({ userId, name, size = 'm', online }: { userId: string; name?: string; size?: 's' | 'm'; online?: boolean }) {
  const label = name ?? nameOf(userId);
  return (
    <span class={`avatar ${size}`} style={{ background: colourOf(userId) }} aria-hidden="true">
      {initials(label === '…' ? (state.users.get(userId)?.username ?? '?') : label)}
      {online && <span class="avatar-dot" />}
    </span>
  );
}
