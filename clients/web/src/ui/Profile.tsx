import { useState } from 'preact/hooks';
import { accountDeleted, api, fail, logout } from '../state/session.js';
import { errorText } from '../state/errors.js';
import { disableNotifications, enableNotifications, notificationsOn, notificationsSupported } from '../state/notify.js';
import { changed, state } from '../state/store.js';
import { saveBlob, t } from './common.js';

/** The caller's profile, the data export and account deletion. */
export function Profile() {
  const me = state.me!;
  const [note, setNote] = useState('');
  const [deleteError, setDeleteError] = useState('');
  const [notifying, setNotifying] = useState(notificationsOn());
  const [notifyRefused, setNotifyRefused] = useState(false);

  const save = async (ev: Event) => {
    ev.preventDefault();
    const form = new FormData(ev.currentTarget as HTMLFormElement);
    try {
      state.me = await api.updateMe({ displayName: String(form.get('displayName') ?? '').trim(), bio: String(form.get('bio') ?? '') });
      state.users.set(me.id, state.me);
      setNote(t('saved'));
      changed();
    } catch (error) {
      fail(error);
    }
  };

  const exportData = async () => {
    try {
      saveBlob(await api.exportData(), 'parley-export.json');
    } catch (error) {
      fail(error);
    }
  };

  const deleteAccount = async (ev: Event) => {
    ev.preventDefault();
    setDeleteError('');
    const password = String(new FormData(ev.currentTarget as HTMLFormElement).get('password') ?? '');
    try {
      await api.deleteAccount(password);
      // Shown on the sign-in page (a note here went with the page it was on).
      accountDeleted();
    } catch (error) {
      // The route may not exist on this server yet (it answers 404): say what the server said.
      setDeleteError(t('error', { message: errorText(state.lang, error) }));
    }
  };

  return (
    <section class="page" aria-labelledby="profile-title">
      <h2 id="profile-title">{t('profile')}</h2>
      <p>
        @{me.username} · {me.email}
      </p>
      <form onSubmit={save}>
        <label>
          {t('displayName')}
          <input name="displayName" value={me.displayName ?? ''} maxLength={64} required />
        </label>
        <label>
          {t('bio')}
          <textarea name="bio" value={me.bio ?? ''} maxLength={500} rows={3} />
        </label>
        <button type="submit" class="primary">
          {t('save')}
        </button>
        {note && <p role="status">{note}</p>}
      </form>

      <h3>{t('notifications')}</h3>
      {notificationsSupported() ? (
        <>
          <label class="inline">
            <input
              type="checkbox"
              checked={notifying}
              onChange={async (e) => {
                const want = (e.currentTarget as HTMLInputElement).checked;
                if (!want) {
                  disableNotifications();
                  setNotifying(false);
                  return;
                }
                const granted = await enableNotifications();
                setNotifying(granted);
                setNotifyRefused(!granted);
              }}
            />
            {t('notificationsOn')}
          </label>
          {notifyRefused && <p class="hint">{t('notificationsRefused')}</p>}
        </>
      ) : (
        <p class="hint">{t('notificationsUnsupported')}</p>
      )}

      <h3>{t('exportData')}</h3>
      <p class="hint">{t('exportHint')}</p>
      <button type="button" onClick={() => void exportData()}>
        {t('exportData')}
      </button>

      <h3>{t('deleteAccount')}</h3>
      <form onSubmit={deleteAccount}>
        <p class="hint">{t('deleteHint')}</p>
        <label>
          {t('password')}
          <input name="password" type="password" autocomplete="current-password" required />
        </label>
        <button type="submit" class="danger">
          {t('deleteConfirm')}
        </button>
        {deleteError && (
          <p role="alert" class="error">
            {deleteError}
          </p>
        )}
      </form>

      <button type="button" onClick={() => void logout()}>
        {t('logout')}
      </button>
    </section>
  );
}
