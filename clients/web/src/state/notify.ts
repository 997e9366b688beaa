/**
 * Desktop notifications for new messages (issue 22), opted into on the profile page: the browser
 * asks its permission once; the choice to use it is kept in this browser. A notification is shown
 * for a message of someone else in a chat that is not muted, unless that chat is on screen in a
 * visible tab. Its tag is the chat, so a busy chat replaces its notification instead of stacking.
 */
const KEY = 'parley.notifications';

export const notificationsSupported = (): boolean => typeof Notification !== 'undefined';

export function notificationsOn(): boolean {
  return notificationsSupported() && Notification.permission === 'granted' && localStorage.getItem(KEY) === '1';
}

/** Asks the browser (only from a click: browsers refuse a prompt without one); true if granted. */
export async function enableNotifications(): Promise<boolean> {
  if (!notificationsSupported()) return false;
  const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
  if (permission !== 'granted') return false;
  localStorage.setItem(KEY, '1');
  return true;
}

export function disableNotifications(): void {
  localStorage.removeItem(KEY);
}

export function notify(title: string, body: string, chatId: string, open: () => void): void {
  if (!notificationsOn()) return;
  try {
    const n = new Notification(title, { body, tag: chatId });
    n.onclick = () => {
      window.focus();
      open();
      n.close();
    };
  } catch {
    // Some browsers allow notifications only from a service worker: none then, the page still counts.
  }
}
