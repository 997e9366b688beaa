import { useState } from 'preact/hooks';
import type { Message } from '../api/index.js';
import { deleteMessage, toggleReaction } from '../state/actions.js';
import { api, fail } from '../state/session.js';
import { state } from '../state/store.js';
import { formatSize, nameOf, saveBlob, t, time } from './common.js';
import { linkify } from './linkify.js';
import { PollView } from './Poll.js';

export const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢'];

interface Props {
  message: Message;
  onReply: (m: Message) => void;
  onEdit: (m: Message) => void;
}

async function download(id: string, name: string): Promise<void> {
  try {
    saveBlob(await api.attachment(id), name);
  } catch (error) {
    fail(error);
  }
}

/** One message: body, reply quote, attachments, poll, reactions, and its actions. */
export function MessageItem({ message, onReply, onEdit }: Props) {
  const [picking, setPicking] = useState(false);
  const mine = message.senderId === state.me?.id;
  const chat = state.chats.get(message.chatId);
  const quoted = message.replyTo ? state.history.get(message.chatId)?.messages.find((m) => m.id === message.replyTo) : undefined;
  const readByOthers = mine && [...(state.reads.get(message.chatId) ?? new Map<string, number>())].some(([userId, seq]) => userId !== state.me?.id && seq >= message.seq);

  return (
    <li class={`message${mine ? ' mine' : ''}`} data-seq={message.seq} aria-label={`${nameOf(message.senderId)}, ${time(message.createdAt)}`}>
      {chat?.type === 'group' && !mine && <span class="sender">{nameOf(message.senderId)}</span>}
      {message.replyTo && (
        <blockquote class="quote">
          <span class="sender">{quoted ? nameOf(quoted.senderId) : ''}</span> {quoted ? (quoted.deletedAt ? t('deleted') : quoted.body) : '…'}
        </blockquote>
      )}
      {message.deletedAt ? (
        <p class="body deleted">{t('deleted')}</p>
      ) : message.poll ? (
        <PollView message={message} />
      ) : (
        // dir="auto": a Hebrew or Arabic message reads right to left (issue 22: RTL alignment).
        message.body && (
          <p class="body" dir="auto">
            {linkify(message.body)}
          </p>
        )
      )}
      {message.attachments.map((a) => (
        <button key={a.id} type="button" class="attachment" onClick={() => void download(a.id, a.name)} aria-label={t('download', { name: a.name })}>
          📎 {a.name} <span class="size">({formatSize(a.size)})</span>
        </button>
      ))}
      {message.reactions.length > 0 && (
        <div class="reactions">
          {message.reactions.map((r) => (
            <button key={r.emoji} type="button" class="reaction" aria-pressed={r.me} onClick={() => void toggleReaction(message, r.emoji)} aria-label={`${t('reactWith', { emoji: r.emoji })}: ${r.count}`}>
              {r.emoji} {r.count}
            </button>
          ))}
        </div>
      )}
      <div class="meta">
        <time dateTime={message.createdAt}>{time(message.createdAt)}</time>
        {message.editedAt && !message.deletedAt && <span> · {t('edited')}</span>}
        {mine && <span> · {readByOthers ? t('readBy') : t('sent')}</span>}
      </div>
      {!message.deletedAt && (
        <div class="actions">
          <button type="button" onClick={() => onReply(message)}>
            {t('reply')}
          </button>
          <button type="button" aria-expanded={picking} onClick={() => setPicking(!picking)}>
            {t('react')}
          </button>
          {mine && !message.poll && (
            <button type="button" onClick={() => onEdit(message)}>
              {t('edit')}
            </button>
          )}
          {mine && (
            <button type="button" onClick={() => confirm(t('deleteMessageConfirm')) && void deleteMessage(message)}>
              {t('delete')}
            </button>
          )}
        </div>
      )}
      {picking && (
        <div class="picker" role="group" aria-label={t('react')}>
          {EMOJI.map((emoji) => (
            <button
              key={emoji}
              type="button"
              aria-label={t('reactWith', { emoji })}
              onClick={() => {
                setPicking(false);
                void toggleReaction(message, emoji);
              }}
            >
              {emoji}
            </button>
          ))}
        </div>
      )}
    </li>
  );
}
