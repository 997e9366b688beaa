import { navigate } from '../state/session.js';
import { state } from '../state/store.js';
import { Avatar } from './Avatar.js';
import { chatTitle, peerOf, t } from './common.js';

/** The chats, newest activity first, with unread badges and the peer's presence. */
export function ChatList({ activeId }: { activeId: string | undefined }) {
  const chats = [...state.chats.values()];
  return (
    <nav class="chat-list" aria-label={t('chats')}>
      <h2>{t('chats')}</h2>
      {chats.length === 0 && <p class="hint">{t('noChats')}</p>}
      <ul>
        {chats.map((chat) => {
          const peer = peerOf(chat);
          const online = peer ? state.presence.get(peer) : undefined;
          const last = chat.lastMessage;
          return (
            <li key={chat.id}>
              <button
                type="button"
                class={`chat-item${chat.id === activeId ? ' active' : ''}`}
                aria-current={chat.id === activeId ? 'page' : undefined}
                onClick={() => navigate({ name: 'chats', chatId: chat.id })}
              >
                <Avatar userId={peer ?? chat.id} name={chatTitle(chat)} online={online} />
                <span class="chat-name">
                  {online && <span class="visually-hidden">{t('online')}: </span>}
                  {chatTitle(chat)}
                </span>
                <span class="chat-last">{last ? (last.deletedAt ? t('deleted') : last.body) : ''}</span>
                {chat.unreadCount > 0 && (
                  <span class="badge" aria-label={t('unread', { count: chat.unreadCount })}>
                    {chat.unreadCount}
                  </span>
                )}
              </button>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
