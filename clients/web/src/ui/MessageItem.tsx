import { useState } from 'preact/hooks';
import type { Message } from '../api/index.js';
import { deleteMessage, toggleReaction } from '../state/actions.js';
import { navigate } from '../state/session.js';
import { state } from '../state/store.js';
import { Attachments } from './Attachments.js';
import { Avatar } from './Avatar.js';
import { nameOf, t, time } from './common.js';
import { linkify } from './linkify.js';
import { PollView } from './Poll.js';

export const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢'];

interface Props {
  message: Message;
  /** Follows a message of the same sender within minutes: no name or picture of its own. */
  grouped: boolean;
  /** Shown after a jump to it (search, a quote). */
  highlighted: boolean;
  onReply: (m: Message) => void;
  onEdit: (m: Message) => void;
}

/**
 * One message: body, reply quote, attachments, poll, reactions, and its actions. The actions show
 * on hover and keyboard focus, and on a touch screen after a tap or long press on the message
 * (issue 22: four buttons on every message read as a test harness).
 */
export function MessageItem({ message, grouped, highlighted, onReply, onEdit }: Props) {
  const [picking, setPicking] = useState(false);
  const [selected, setSelected] = useState(false);
  const mine = message.senderId === state.me?.id;
  const chat = state.chats.get(message.chatId);
  const quoted = message.replyTo ? state.history.get(message.chatId)?.messages.find((m) => m.id === message.replyTo) : undefined;
  const readByOthers = mine && [...(state.reads.get(message.chatId) ?? new Map<string, number>())].some(([userId, seq]) => userId !== state.me?.id && seq >= message.seq);

  return (
    <li
      id={`message-${message.id}`}
      class={`message${mine ? ' mine' : ''}${grouped ? ' grouped' : ''}${selected || picking ? ' selected' : ''}${highlighted ? ' highlighted' : ''}`}
      data-seq={message.seq}
      aria-label={`${nameOf(message.senderId)}, ${time(message.createdAt)}`}
      onClick={(e) => {
        // A tap on the bubble (not on one of its controls or links) shows or hides its actions.
        if (!(e.target as HTMLElement).closest('button, a, input, label')) setSelected(!selected);
      }}
      onContextMenu={(e) => {
        // A long press on a touch screen opens the context menu: show the actions instead.
        if (!message.deletedAt && matchMedia('(pointer: coarse)').matches) {
          e.preventDefault();
          setSelected(true);
        }
      }}
    >
      {chat?.type === 'group' && !mine && !grouped && (
        <span class="sender">
          <Avatar userId={message.senderId} size="s" /> {nameOf(message.senderId)}
        </span>
      )}
      {message.replyTo && (
        <button type="button" class="quote" onClick={() => navigate({ name: 'chats', chatId: message.chatId, messageId: message.replyTo! })} title={t("showQuoted")}>
          <span class="sender">{quoted ? nameOf(quoted.senderId) : ''}</span> {quoted ? (quoted.deletedAt ? t('deleted') : quoted.body) : '…'}
        </button>
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
      <Attachments items={message.attachments} />
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
