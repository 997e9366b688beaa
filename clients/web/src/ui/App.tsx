import type { ComponentChildren } from 'preact';
import { LANG_NAMES, type Lang } from '../i18n.js';
import { useEffect } from 'preact/hooks';
import { isMuted, navigate } from '../state/session.js';
import { changed, state, useAppState, type View } from '../state/store.js';
import { Auth } from './Auth.js';
import { ChatList } from './ChatList.js';
import { ChatView } from './ChatView.js';
import { t } from './common.js';
import { People } from './People.js';
import { Profile } from './Profile.js';
import { Search } from './Search.js';
import { Viewer } from './Viewer.js';

function LanguageSwitch() {
  return (
    <label class="lang">
      <span class="visually-hidden">{t('language')}</span>
      <select
        value={state.lang}
        onChange={(e) => {
          state.lang = (e.currentTarget as HTMLSelectElement).value as Lang;
          localStorage.setItem('parley.lang', state.lang);
          document.documentElement.lang = state.lang;
          changed();
        }}
      >
        {Object.entries(LANG_NAMES).map(([code, name]) => (
          <option key={code} value={code}>
            {name}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A dismissible line above the page: an error (role alert) or a notice (role status). */
function Banner({ role, kind, onClose, children }: { role: 'alert' | 'status'; kind: 'error' | 'notice'; onClose: () => void; children: ComponentChildren }) {
  return (
    <div role={role} class={`${kind} banner`}>
      {children}
      <button
        type="button"
        onClick={() => {
          onClose();
          changed();
        }}
      >
        ×<span class="visually-hidden">{t('cancel')}</span>
      </button>
    </div>
  );
}

const TABS: { view: View['name']; key: 'chats' | 'people' | 'search' | 'profile' }[] = [
  { view: 'chats', key: 'chats' },
  { view: 'people', key: 'people' },
  { view: 'search', key: 'search' },
  { view: 'profile', key: 'profile' },
];

/** The page: sign-in until there is a session, then the navigation and the current view. */
export function App() {
  useAppState();
  const view = state.view;
  const chatId = view.name === 'chats' ? view.chatId : undefined;
  // Unread messages in the tab's title, so a background tab says there is something new (issue 22);
  // muted chats do not count.
  const unread = state.me ? [...state.chats.values()].reduce((n, c) => n + (isMuted(c.id) ? 0 : c.unreadCount), 0) : 0;
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) ${t('appName')}` : t('appName');
  }, [unread]);
  return (
    <div class={`app${chatId ? ' in-chat' : ''}`}>
      <div class="visually-hidden" aria-live="polite" role="status">
        {state.announcement}
      </div>
      {state.error && (
        <Banner role="alert" kind="error" onClose={() => (state.error = null)}>
          {t('error', { message: state.error })}
        </Banner>
      )}
      {state.notice && (
        <Banner role="status" kind="notice" onClose={() => (state.notice = null)}>
          {state.notice}
        </Banner>
      )}
      {state.booting ? (
        <p class="hint">{t('connecting')}</p>
      ) : !state.me ? (
        <>
          <header class="top">
            <LanguageSwitch />
          </header>
          <Auth />
        </>
      ) : (
        <>
          <header class="top">
            <h1>{t('appName')}</h1>
            <nav aria-label={t('appName')}>
              {TABS.map((tab) => (
                <button key={tab.view} type="button" aria-current={view.name === tab.view ? 'page' : undefined} onClick={() => navigate({ name: tab.view } as View)}>
                  {t(tab.key)}
                </button>
              ))}
            </nav>
            <LanguageSwitch />
          </header>
          {state.connection !== 'online' && <p class="connection">{t(state.connection === 'connecting' ? 'connecting' : 'reconnecting')}</p>}
          <Viewer />
          <main class="layout">
            {view.name === 'chats' ? (
              <>
                <ChatList activeId={chatId} />
                {chatId ? <ChatView chatId={chatId} /> : <section class="chat-view empty">{t('selectChat')}</section>}
              </>
            ) : view.name === 'people' ? (
              <People />
            ) : view.name === 'search' ? (
              <Search />
            ) : (
              <Profile />
            )}
          </main>
        </>
      )}
    </div>
  );
}
