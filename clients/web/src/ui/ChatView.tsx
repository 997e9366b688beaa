import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import type { Message } from '../api/index.js';
import { discardSend, loadOlder, navigate, retrySend } from '../state/session.js';
import { state } from '../state/store.js';
import { Avatar } from './Avatar.js';
import { chatTitle, dayLabel, dayOf, lastSeenText, nameOf, peerOf, t } from './common.js';
import { ChatSettings } from './ChatSettings.js';
import { Composer } from './Composer.js';
import { MessageItem } from './MessageItem.js';

/** Messages of one sender closer than this share one name and picture (grouped). */
const GROUP_WITHIN_MS = 5 * 60_000;
/** Nearer than this to the end, the list follows new messages; farther, the reader keeps their place. */
const NEAR_END_PX = 120;
/** Nearer than this to the top, the previous page loads by itself (infinite scroll). */
const NEAR_TOP_PX = 200;
/** A jump looks this many pages back for its message, then gives up. */
const MAX_JUMP_PAGES = 40;

function groupedWith(m: Message, prev: Message | undefined): boolean {
  return !!prev && prev.senderId === m.senderId && !prev.poll && dayOf(prev.createdAt) === dayOf(m.createdAt) && Date.parse(m.createdAt) - Date.parse(prev.createdAt) < GROUP_WITHIN_MS;
}

/**
 * One chat: header with picture, presence or last seen, and typing; the history with day lines,
 * an unread divider, grouped messages and infinite scroll that keeps the reading position; the
 * composer, which also takes files dropped anywhere on the chat.
 */
export function ChatView({ chatId }: { chatId: string }) {
  const [replyTo, setReplyTo] = useState<Message | null>(null);
  const [editing, setEditing] = useState<Message | null>(null);
  const [settingsOpen, setSettingsOpen] = useState(false);
  const [dragging, setDragging] = useState(false);
  const [highlight, setHighlight] = useState<string | null>(null);
  /** Messages that arrived while the reader was scrolled up: a button offers to jump to them. */
  const [unseen, setUnseen] = useState(0);
  const box = useRef<HTMLDivElement>(null);
  const nearEnd = useRef(true);
  const loadingOlder = useRef(false);
  /** The list's height and position before an older page was added above, to keep the view still. */
  const anchor = useRef<{ height: number; top: number } | null>(null);
  /** The chat whose first screen has been placed (at the unread divider, or the end). */
  const placed = useRef<string | null>(null);
  const jumpPages = useRef(0);
  /** The newest seq the list has been placed for (new arrivals are counted against it). */
  const seenSeq = useRef<number | undefined>(undefined);
  const dropFiles = useRef<((files: File[]) => void) | null>(null);

  const chat = state.chats.get(chatId);
  const history = state.history.get(chatId);
  const messages = history?.messages ?? [];
  const pending = [...state.pending.values()].filter((p) => p.chatId === chatId && !messages.some((m) => m.id === p.messageId));
  const lastSeq = messages.at(-1)?.seq;
  const firstId = messages[0]?.id;
  const unreadFrom = state.unreadFrom.get(chatId);
  const view = state.view;
  const jumpTo = view.name === 'chats' && view.chatId === chatId ? view.messageId : undefined;

  useEffect(() => {
    setReplyTo(null);
    setEditing(null);
    setSettingsOpen(false);
    nearEnd.current = true;
    jumpPages.current = 0;
    seenSeq.current = undefined;
    setUnseen(0);
  }, [chatId]);

  // An older page was added above: keep what the reader looked at where it was.
  useLayoutEffect(() => {
    const el = box.current;
    if (el && anchor.current) el.scrollTop = anchor.current.top + (el.scrollHeight - anchor.current.height);
    anchor.current = null;
  }, [firstId]);

  // The first screen of a chat: the unread divider at the top, else the newest message at the end.
  // Afterwards, new messages are followed only by a reader at the end (or after my own send).
  useLayoutEffect(() => {
    const el = box.current;
    if (!el || !history || jumpTo) return;
    if (placed.current !== chatId) {
      // Not before openChat has set the divider (it zeroes the unread count at the same moment).
      if (unreadFrom === undefined && (chat?.unreadCount ?? 0) > 0) return;
      placed.current = chatId;
      const divider = el.querySelector<HTMLElement>('.unread-divider');
      if (divider) el.scrollTop = divider.offsetTop - el.offsetTop - 8;
      else el.scrollTop = el.scrollHeight;
      seenSeq.current = lastSeq;
      return;
    }
    const newest = messages.at(-1);
    if (nearEnd.current || pending.length > 0 || newest?.senderId === state.me?.id) {
      el.scrollTop = el.scrollHeight;
      setUnseen(0);
    } else {
      const since = seenSeq.current ?? Infinity;
      const arrived = messages.filter((m) => m.seq > since).length;
      if (arrived > 0) setUnseen((n) => n + arrived);
    }
    seenSeq.current = lastSeq;
  }, [chatId, !!history, unreadFrom, chat?.unreadCount, lastSeq, pending.length]);

  // A jump (from search or a quote): page back until the message is loaded, then show and mark it.
  useEffect(() => {
    if (!jumpTo || !history) return;
    const target = document.getElementById(`message-${jumpTo}`);
    if (target) {
      placed.current = chatId;
      seenSeq.current = history.messages.at(-1)?.seq;
      target.scrollIntoView({ block: 'center' });
      setHighlight(jumpTo);
      const timer = setTimeout(() => setHighlight(null), 2_500);
      // The jump is done: the address keeps the chat, not the message.
      navigate({ name: 'chats', chatId });
      return () => clearTimeout(timer);
    }
    if (history.older && jumpPages.current < MAX_JUMP_PAGES && !loadingOlder.current) {
      jumpPages.current++;
      loadingOlder.current = true;
      void loadOlder(chatId).finally(() => (loadingOlder.current = false));
    } else if (!history.older || jumpPages.current >= MAX_JUMP_PAGES) navigate({ name: 'chats', chatId });
  }, [jumpTo, firstId, !!history]);

  const older = () => {
    const el = box.current;
    if (!el || !history?.older || loadingOlder.current) return;
    loadingOlder.current = true;
    anchor.current = { height: el.scrollHeight, top: el.scrollTop };
    void loadOlder(chatId).finally(() => (loadingOlder.current = false));
  };

  if (!chat) return <section class="chat-view empty">{t('selectChat')}</section>;
  const peer = peerOf(chat);
  const online = peer ? state.presence.get(peer) : undefined;
  const seen = peer && !online ? state.lastSeen.get(peer) : undefined;
  const typers = [...(state.typing.get(chatId) ?? new Map<string, number>())].filter(([, until]) => until > Date.now()).map(([id]) => nameOf(id));

  return (
    <section
      class={`chat-view${dragging ? ' dragging' : ''}`}
      aria-labelledby="chat-title"
      onDragOver={(e) => {
        if (!e.dataTransfer?.types.includes('Files')) return;
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={(e) => e.currentTarget === e.target && setDragging(false)}
      onDrop={(e) => {
        if (!e.dataTransfer?.files.length) return;
        e.preventDefault();
        setDragging(false);
        dropFiles.current?.([...e.dataTransfer.files]);
      }}
    >
      <header class="chat-header">
        <button type="button" class="back" onClick={() => navigate({ name: 'chats' })}>
          ← <span class="visually-hidden">{t('back')}</span>
        </button>
        <Avatar userId={peer ?? chat.id} name={chatTitle(chat)} online={online} />
        <div class="chat-heading">
          <h2 id="chat-title">{chatTitle(chat)}</h2>
          <p class="status" aria-live="polite">
            {typers.length > 0
              ? t('typing', { name: typers.join(', ') })
              : chat.type === 'group'
                ? `${t('members')}: ${chat.members.map((m) => nameOf(m.userId)).join(', ')}`
                : online
                  ? t('online')
                  : seen
                    ? lastSeenText(seen)
                    : online === false
                      ? t('offline')
                      : ''}
          </p>
        </div>
        <button type="button" class="settings-toggle" aria-expanded={settingsOpen} onClick={() => setSettingsOpen(!settingsOpen)}>
          ⚙<span class="visually-hidden">{t('chatSettings')}</span>
        </button>
      </header>
      {settingsOpen && <ChatSettings chat={chat} />}
      <div
        class="messages"
        role="log"
        aria-label={t('chats')}
        aria-relevant="additions"
        ref={box}
        onScroll={() => {
          const el = box.current!;
          nearEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < NEAR_END_PX;
          if (nearEnd.current && unseen > 0) setUnseen(0);
          if (el.scrollTop < NEAR_TOP_PX) older();
        }}
      >
        {history?.older && (
          <button type="button" class="link" onClick={older}>
            {t('loadOlder')}
          </button>
        )}
        <ul>
          {messages.map((m, i) => {
            const prev = i > 0 ? messages[i - 1] : undefined;
            const newDay = dayOf(m.createdAt) !== (prev ? dayOf(prev.createdAt) : '');
            const divider = unreadFrom === m.seq;
            return [
              // A line with the day where the day changes (issue 22: no date separators).
              newDay && (
                <li key={`day-${m.id}`} class="day">
                  {dayLabel(m.createdAt)}
                </li>
              ),
              divider && (
                <li key={`unread-${m.id}`} class="unread-divider">
                  {t('unreadBelow')}
                </li>
              ),
              <MessageItem
                key={m.id}
                message={m}
                grouped={!newDay && !divider && groupedWith(m, prev)}
                highlighted={highlight === m.id}
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
            ];
          })}
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
      </div>
      {unseen > 0 && (
        <button
          type="button"
          class="to-newest"
          onClick={() => {
            const el = box.current;
            if (el) el.scrollTop = el.scrollHeight;
            setUnseen(0);
          }}
        >
          ↓ {t('newBelow', { count: unseen })}
        </button>
      )}
      {dragging && (
        <div class="drop-hint" aria-hidden="true">
          {t('dropFiles')}
        </div>
      )}
      <Composer
        key={chatId}
        chatId={chatId}
        // Only this chat's: the state of the chat left is cleared by the effect above, one render
        // after the new chat's composer took it (an edit's text became the new chat's draft).
        replyTo={replyTo?.chatId === chatId ? replyTo : null}
        editing={editing?.chatId === chatId ? editing : null}
        takeFiles={(fn) => (dropFiles.current = fn)}
        onDone={() => {
          setReplyTo(null);
          setEditing(null);
        }}
      />
    </section>
  );
}
