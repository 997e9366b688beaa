import { useState } from 'preact/hooks';
import type { Chat, User } from '../api/index.js';
import { api, fail, findPeople, isMuted, navigate, setMuted } from '../state/session.js';
import { changed, state } from '../state/store.js';
import { nameOf, t } from './common.js';

/**
 * A chat's settings (issue 22: there was no way to manage a chat): mute for any chat; for a group,
 * its title, its members (add by name, remove) and leaving it. The server decides who may do what
 * (api.md: owner and admins rename, add and remove members; only the owner removes an admin); the
 * controls follow the caller's role so nobody is offered what would be refused.
 */
export function ChatSettings({ chat }: { chat: Chat }) {
  const me = state.me?.id;
  const myRole = chat.members.find((m) => m.userId === me)?.role;
  const manages = myRole === 'owner' || myRole === 'admin';
  const [found, setFound] = useState<User[] | null>(null);

  // Rename and add answer the chat as it now is; a removal answers nothing, and the live
  // member.removed event updates the list (re-reading the chat could bring back an older copy).
  const act = async (work: () => Promise<Chat | void>) => {
    try {
      const fresh = await work();
      if (fresh) state.chats.set(chat.id, fresh);
      changed();
    } catch (error) {
      fail(error);
    }
  };
  const rename = (ev: Event) => {
    ev.preventDefault();
    const title = String(new FormData(ev.currentTarget as HTMLFormElement).get('title') ?? '').trim();
    if (title) void act(() => api.renameChat(chat.id, title));
  };
  const find = async (ev: Event) => {
    ev.preventDefault();
    const query = String(new FormData(ev.currentTarget as HTMLFormElement).get('query') ?? '').trim();
    if (!query) return;
    try {
      setFound((await findPeople(query)).filter((u) => !chat.members.some((m) => m.userId === u.id)));
    } catch (error) {
      fail(error);
    }
  };
  const leave = async () => {
    if (!me || !confirm(t('leaveConfirm', { title: chat.title ?? '' }))) return;
    try {
      await api.removeMember(chat.id, me);
      state.chats.delete(chat.id);
      state.history.delete(chat.id);
      navigate({ name: 'chats' });
    } catch (error) {
      fail(error);
    }
  };
  // The owner may remove anyone but themself; an admin, members only.
  const removable = (role: string, userId: string) => userId !== me && role !== 'owner' && (myRole === 'owner' || (myRole === 'admin' && role === 'member'));

  return (
    <section class="chat-settings" aria-label={t('chatSettings')}>
      <label class="inline">
        <input
          type="checkbox"
          checked={isMuted(chat.id)}
          onChange={(e) => {
            setMuted(chat.id, (e.currentTarget as HTMLInputElement).checked);
            changed();
          }}
        />
        {t('mute')}
      </label>
      {chat.type === 'group' && (
        <>
          {manages && (
            <form class="row" onSubmit={rename}>
              <label class="grow">
                {t('groupTitle')}
                <input name="title" defaultValue={chat.title ?? ''} maxLength={128} required />
              </label>
              <button type="submit">{t('rename')}</button>
            </form>
          )}
          <h3>{t('members')}</h3>
          <ul class="people">
            {chat.members.map((m) => (
              <li key={m.userId} class="person">
                <span class="person-name">
                  {nameOf(m.userId)} <span class="hint">{t(m.role === 'owner' ? 'roleOwner' : m.role === 'admin' ? 'roleAdmin' : 'roleMember')}</span>
                </span>
                {manages && removable(m.role, m.userId) && (
                  <button type="button" onClick={() => void act(() => api.removeMember(chat.id, m.userId))}>
                    {t('removeMember')}
                  </button>
                )}
              </li>
            ))}
          </ul>
          {manages && (
            <>
              <form class="row" onSubmit={find}>
                <label class="grow">
                  {t('addMember')}
                  <input name="query" type="search" />
                </label>
                <button type="submit">{t('search')}</button>
              </form>
              {found && (
                <ul class="people">
                  {found.length === 0 && <li class="hint">{t('nothingFound')}</li>}
                  {found.map((u) => (
                    <li key={u.id} class="person">
                      <span class="person-name">
                        {u.displayName || u.username} <span class="hint">@{u.username}</span>
                      </span>
                      <button
                        type="button"
                        onClick={() =>
                          void act(async () => {
                            const added = await api.addMember(chat.id, u.id);
                            setFound(null);
                            return added;
                          })
                        }
                      >
                        {t('add')}
                      </button>
                    </li>
                  ))}
                </ul>
              )}
            </>
          )}
          <button type="button" class="danger" onClick={() => void leave()}>
            {t('leaveGroup')}
          </button>
        </>
      )}
    </section>
  );
}
