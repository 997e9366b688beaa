import { uploadAttachment } from '../api/upload.js';
import type { Attachment, Message } from '../api/index.js';
import { api, fail } from './session.js';
import { upsertMessage } from './events.js';
import { changed } from './store.js';

/** Message actions over HTTP. Live events bring the same changes to every other member. */

export async function editMessage(message: Message, body: string): Promise<void> {
  try {
    upsertMessage(await api.editMessage(message.id, body));
    changed();
  } catch (error) {
    fail(error);
  }
}

export async function deleteMessage(message: Message): Promise<void> {
  try {
    await api.deleteMessage(message.id);
  } catch (error) {
    fail(error);
  }
}

/** Toggles my reaction; the local count changes at once, guarded against the echoed event. */
export async function toggleReaction(message: Message, emoji: string): Promise<void> {
  const current = message.reactions.find((r) => r.emoji === emoji);
  const adding = !current?.me;
  try {
    if (adding) await api.react(message.id, emoji);
    else await api.unreact(message.id, emoji);
  } catch (error) {
    fail(error);
    return;
  }
  const r = message.reactions.find((x) => x.emoji === emoji);
  if (r?.me === adding) return; // the live event came first
  if (r) {
    r.count += adding ? 1 : -1;
    r.me = adding;
    if (r.count <= 0) message.reactions = message.reactions.filter((x) => x !== r);
  } else if (adding) message.reactions.push({ emoji, count: 1, me: true });
  changed();
}

export async function vote(message: Message, optionIds: string[]): Promise<void> {
  if (!message.poll) return;
  try {
    message.poll = await api.vote(message.poll.id, optionIds);
    changed();
  } catch (error) {
    fail(error);
  }
}

export async function createPoll(chatId: string, question: string, options: string[], multiple: boolean): Promise<boolean> {
  try {
    upsertMessage(await api.createPoll(chatId, question, options, multiple));
    changed();
    return true;
  } catch (error) {
    fail(error);
    return false;
  }
}

/** Uploads with progress; a 401 (expired access token) is refreshed once and retried. */
export async function upload(file: File, progress: (fraction: number) => void): Promise<Attachment> {
  const url = api.url('/attachments');
  try {
    return await uploadAttachment(url, api.accessToken, file, progress);
  } catch (error) {
    if ((error as { status?: number }).status === 401 && (await api.refresh())) return uploadAttachment(url, api.accessToken, file, progress);
    throw error;
  }
}
