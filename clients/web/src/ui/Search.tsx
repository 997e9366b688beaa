import { useState } from 'preact/hooks';
import type { Message } from '../api/index.js';
import { api, fail, navigate } from '../state/session.js';
import { state } from '../state/store.js';
import { chatTitle, nameOf, t, time } from './common.js';
import { highlight } from './highlight.js';

/**
 * Full-text search over the caller's chats; matches highlighted without any HTML parsing. Results
 * come 50 at a time ("Show more" asks for the next page); a result opens its chat at the message.
 */
export function Search() {
  const [query, setQuery] = useState('');
  const [results, setResults] = useState<Message[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (ev: Event) => {
    ev.preventDefault();
    const q = String(new FormData(ev.currentTarget as HTMLFormElement).get('q') ?? '').trim();
    if (!q) return;
    try {
      const page = await api.search(q);
      setResults(page.items);
      setNext(page.nextCursor);
      setQuery(q);
    } catch (error) {
      fail(error);
    }
  };

  const more = async () => {
    if (!next || busy) return;
    setBusy(true);
    try {
      const page = await api.search(query, undefined, next);
      // A message edited between pages could come twice: keep the first.
      setResults((shown) => [...(shown ?? []), ...page.items.filter((m) => !shown?.some((s) => s.id === m.id))]);
      setNext(page.nextCursor);
    } catch (error) {
      fail(error);
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="page" aria-labelledby="search-title">
      <h2 id="search-title">{t('searchMessages')}</h2>
      <form class="row" role="search" onSubmit={submit}>
        <label class="grow">
          {t('searchPlaceholder')}
          <input name="q" type="search" maxLength={200} required />
        </label>
        <button type="submit">{t('search')}</button>
      </form>
      {results && results.length === 0 && <p class="hint">{t('noResults')}</p>}
      <ul class="results" aria-live="polite">
        {results?.map((m) => {
          const chat = state.chats.get(m.chatId);
          return (
            <li key={m.id}>
              <button type="button" class="result" onClick={() => navigate({ name: 'chats', chatId: m.chatId, messageId: m.id })}>
                <span class="hint">
                  {chat ? chatTitle(chat) : ''} · {nameOf(m.senderId)} · {time(m.createdAt)}
                </span>
                <span class="body">
                  {highlight(m.body, query).map((part, i) => (part.match ? <mark key={i}>{part.text}</mark> : part.text))}
                </span>
              </button>
            </li>
          );
        })}
      </ul>
      {next && (
        <button type="button" onClick={() => void more()} disabled={busy}>
          {t('showMore')}
        </button>
      )}
    </section>
  );
}
