import { useState } from 'preact/hooks';
import type { User } from '../api/index.js';
import { api, fail, findPeople, loadContacts, navigate } from '../state/session.js';
import { changed, state } from '../state/store.js';
import { Avatar } from './Avatar.js';
import { t } from './common.js';

async function openDirect(userId: string): Promise<void> {
  try {
    const chat = await api.openDirect(userId);
    state.chats.set(chat.id, chat);
    navigate({ name: 'chats', chatId: chat.id });
  } catch (error) {
    fail(error);
  }
}

async function removeContact(user: User): Promise<void> {
  try {
    await api.removeContact(user.id);
    await loadContacts();
  } catch (error) {
    fail(error);
  }
}

async function addContact(user: User): Promise<void> {
  try {
    await api.addContact(user.id);
    await loadContacts();
  } catch (error) {
    fail(error);
  }
}

function Person({ user, selectable, selected, onSelect }: { user: User; selectable: boolean; selected: boolean; onSelect: (on: boolean) => void }) {
  const isContact = state.contacts.some((c) => c.id === user.id);
  const online = state.presence.get(user.id);
  return (
    <li class="person">
      {selectable && (
        <input type="checkbox" id={`pick-${user.id}`} checked={selected} onChange={(e) => onSelect((e.currentTarget as HTMLInputElement).checked)} />
      )}
      <label for={selectable ? `pick-${user.id}` : undefined} class="person-name">
        <Avatar userId={user.id} name={user.displayName || user.username} size="s" online={online} />
        {online && <span class="visually-hidden">{t('online')}: </span>}
        {user.displayName || user.username} <span class="hint">@{user.username}</span>
      </label>
      {isContact ? (
        <>
          <span class="hint">{t('isContact')}</span>
          <button type="button" onClick={() => void removeContact(user)}>
            {t('removeContact')}
          </button>
        </>
      ) : (
        <button type="button" onClick={() => void addContact(user)}>
          {t('addContact')}
        </button>
      )}
      <button type="button" class="primary" onClick={() => void openDirect(user.id)}>
        {t('openChat')}
      </button>
    </li>
  );
}

/** Find people by name prefix, keep contacts, open direct chats, create groups. */
export function People() {
  const [results, setResults] = useState<User[] | null>(null);
  const [picked, setPicked] = useState<Set<string>>(new Set());
  const [grouping, setGrouping] = useState(false);

  const search = async (ev: Event) => {
    ev.preventDefault();
    const query = String(new FormData(ev.currentTarget as HTMLFormElement).get('query') ?? '').trim();
    if (!query) return;
    try {
      setResults(await findPeople(query));
    } catch (error) {
      fail(error);
    }
  };

  const createGroup = async (ev: Event) => {
    ev.preventDefault();
    const title = String(new FormData(ev.currentTarget as HTMLFormElement).get('title') ?? '').trim();
    try {
      const chat = await api.createGroup(title, [...picked]);
      state.chats.set(chat.id, chat);
      changed();
      setGrouping(false);
      setPicked(new Set());
      navigate({ name: 'chats', chatId: chat.id });
    } catch (error) {
      fail(error);
    }
  };

  const select = (id: string, on: boolean) => {
    const next = new Set(picked);
    if (on) next.add(id);
    else next.delete(id);
    setPicked(next);
  };
  const list = (users: User[]) => (
    <ul class="people">
      {users.map((u) => (
        <Person key={u.id} user={u} selectable={grouping} selected={picked.has(u.id)} onSelect={(on) => select(u.id, on)} />
      ))}
    </ul>
  );

  return (
    <section class="page" aria-labelledby="people-title">
      <h2 id="people-title">{t('people')}</h2>
      <form class="row" role="search" onSubmit={search}>
        <label class="grow">
          {t('findPeople')}
          <input name="query" type="search" placeholder={t('searchPeoplePlaceholder')} maxLength={64} required />
        </label>
        <button type="submit">{t('search')}</button>
      </form>
      {results && (results.length ? list(results) : <p class="hint">{t('noResults')}</p>)}
      <h3>{t('contacts')}</h3>
      {state.contacts.length ? list(state.contacts) : <p class="hint">{t('noContacts')}</p>}
      {grouping ? (
        <form class="group-form" onSubmit={createGroup}>
          <label>
            {t('groupTitle')}
            <input name="title" required maxLength={128} />
          </label>
          <p class="hint">
            {t('members')}: {picked.size}
          </p>
          <div class="row">
            <button type="button" onClick={() => setGrouping(false)}>
              {t('cancel')}
            </button>
            <button type="submit" class="primary">
              {t('create')}
            </button>
          </div>
        </form>
      ) : (
        <button type="button" onClick={() => setGrouping(true)}>
          {t('newGroup')}
        </button>
      )}
    </section>
  );
}
