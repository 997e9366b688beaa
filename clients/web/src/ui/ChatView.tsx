import { useEffect, useRef, useState } from 'preact/hooks';
import type { Message } from '../api/index.js';
import { discardSend, loadOlder, navigate, retrySend } from '../state/session.js';
import { state } from '../state/store.js';
import { chatTitle, dayLabel, dayOf, nameOf, peerOf, t } from './common.js';
import { ChatSettings } from './ChatSettings.js';
import { Composer } from './Composer.js';
import { MessageItem } from './MessageItem.js';

/** One chat: header with presence and typing, the history, the composer. */
export function ChatView({ chatId }: { chatId: string }) {
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const listEnd = useRef<HTMLDivElement>(null);
  const chat = state.chats.get(chatId);
  const history = state.history.get(chatId);
  const messages = history?.messages ?? [];
  const pending = [...state.pending.values()].filter((p) => p.chatId === chatId && !messages.some((m) => m.id === p.messageId));
  const lastSeq = messages.at(-1)?.seq;

  useEffect(() => listEnd.current?.scrollIntoView({ block: 'end' }), [chatId, lastSeq, pending.length]);
  useEffect(() => {
    setReplyTo(null);
    setEditing(null);
    setSettingsOpen(false);
  }, [chatId]);

  if (!chat) return <section class="chat-view empty">{t('selectChat')}</section>;
  const peer = peerOf(chat);
  const online = peer ? state.presence.get(peer) : undefined;
  const typers = [...(state.typing.get(chatId) ?? new Map<string, number>())].filter(([, until]) => until > Date.now()).map(([id]) => nameOf(id));

  return (
    <section class="chat-view" aria-labelledby="chat-title">
      <header class="chat-header">
        <button type="button" class="back" onClick={() => navigate({ name: 'chats' })}>
          ← <span class="visually-hidden">{t('back')}</span>
        </button>
        <div>
          <h2 id="chat-title">{chatTitle(chat)}</h2>
          <p class="status" aria-live="polite">
            {typers.length > 0
              ? t('typing', { name: typers.join(', ') })
              : chat.type === 'group'
                ? `${t('members')}: ${chat.members.map((m) => nameOf(m.userId)).join(', ')}`
                : online !== undefined
                  ? t(online ? 'online' : 'offline')
                  : ''}
          </p>
        </div>
        <button type="button" class="settings-toggle" aria-expanded={settingsOpen} onClick={() => setSettingsOpen(!settingsOpen)}>
          ⚙<span class="visually-hidden">{t('chatSettings')}</span>
        </button>
      </header>
      {settingsOpen && <ChatSettings chat={chat} />}
      <div class="messages" role="log" aria-label={t('chats')} aria-relevant="additions">
        {history?.older && (
          <button type="button" class="link" onClick={() => void loadOlder(chatId)}>
            {t('loadOlder')}
          </button>
        )}
        <ul>
          {messages.map((m, i) => [
            // A line with the day where the day changes (issue 22: no date separators).
            dayOf(m.createdAt) !== (i > 0 ? dayOf(messages[i - 1]!.createdAt) : '') && (
              <li key={`day-${m.id}`} class="day" role="separator">
                {dayLabel(m.createdAt)}
              </li>
            ),
            <MessageItem
              key={m.id}
              message={m}
              onReply={(msg) => {
                setEditing(null);
                setReplyTo(msg);
                document.getElementById('composer-text')?.focus();
              }}
              onEdit={(msg) => {
                setReplyTo(null);
                setEditing(msg);
                document.getElementById('composer-text')?.focus();
              }}
            />,
          ])}
          {pending.map((p) => (
            <li key={p.clientMsgId} class="message mine pending">
              <p class="body">{p.body}</p>
              <div class="meta">{p.error ? t('failed', { reason: p.error }) : t('sending')}</div>
              {p.error && (
                <div class="actions">
                  <button type="button" onClick={() => retrySend(p.clientMsgId)}>
                    {t('retry')}
                  </button>
                  <button type="button" onClick={() => discardSend(p.clientMsgId)}>
                    {t('discard')}
                  </button>
                </div>
              )}
            </li>
          ))}
        </ul>
        <div ref={listEnd} />
      </div>
      <Composer
        key={chatId}
        chatId={chatId}
        replyTo={replyTo}
        editing={editing}
        onDone={() => {
          setReplyTo(null);
          setEditing(null);
        }}
      />
    </section>
  );
}
