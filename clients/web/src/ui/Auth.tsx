import { useState } from 'preact/hooks';
import { api, login, register } from '../state/session.js';
import { errorText } from '../state/errors.js';
import { state } from '../state/store.js';
import { t } from './common.js';

type Mode = 'login' | 'register' | 'forgot' | 'reset';

/** A reset link (`/reset-password#token=…`, from the mail) opens the reset form with its token. */
function linkedResetToken(): string | null {
  if (location.pathname !== '/reset-password') return null;
  const token = new URLSearchParams(location.hash.slice(1)).get('token');
  // The token must not stay in the address bar or the history.
  history.replaceState(null, '', '/');
  return token;
}

/**
 * Log in, create an account, or reset a forgotten password (ask for the mail, then set a new
 * password with the link's token or the code the mail also carries). One form, four modes.
 */
export function Auth() {
  const [resetToken] = useState(linkedResetToken);
  const [mode, setMode] = useState<Mode>(resetToken ? 'reset' : 'login');
  const [error, setError] = useState('');
  const [info, setInfo] = useState('');
  const [busy, setBusy] = useState(false);
  const go = (next: Mode, message = '') => {
    setMode(next);
    setError('');
    setInfo(message);
  };

  const submit = async (ev: Event) => {
    ev.preventDefault();
    const form = new FormData(ev.currentTarget as HTMLFormElement);
    const field = (name: string) => String(form.get(name) ?? '').trim();
    setBusy(true);
    setError('');
    try {
      if (mode === 'login') await login(field('login'), String(form.get('password') ?? ''));
      else if (mode === 'register')
        await register({
          username: field('username'),
          email: field('email'),
          password: String(form.get('password') ?? ''),
          ...(field('displayName') ? { displayName: field('displayName') } : {}),
        });
      else if (mode === 'forgot') {
        await api.requestReset(field('email'));
        go('reset', t('resetSent', { email: field('email') }));
      } else {
        await api.confirmReset(resetToken ?? field('code'), String(form.get('newPassword') ?? ''));
        go('login', t('passwordChanged'));
      }
    } catch (e) {
      setError(errorText(state.lang, e));
    } finally {
      setBusy(false);
    }
  };

  const title = { login: t('login'), register: t('register'), forgot: t('resetRequestTitle'), reset: t('resetTitle') }[mode];
  const action = { login: t('login'), register: t('register'), forgot: t('sendResetMail'), reset: t('setPassword') }[mode];
  return (
    <main class="auth">
      <h1>{t('appName')}</h1>
      <form onSubmit={submit} aria-labelledby="auth-title" key={mode}>
        <h2 id="auth-title">{title}</h2>
        {info && <p role="status">{info}</p>}
        {mode === 'login' && (
          <label>
            {t('loginField')}
            <input name="login" autocomplete="username" required />
          </label>
        )}
        {mode === 'register' && (
          <>
            <label>
              {t('username')}
              <input name="username" autocomplete="username" required minLength={3} maxLength={32} />
            </label>
            <label>
              {t('email')}
              <input name="email" type="email" autocomplete="email" required />
            </label>
            <label>
              {t('displayName')}
              <input name="displayName" autocomplete="name" maxLength={64} />
            </label>
          </>
        )}
        {mode === 'forgot' && (
          <>
            <p class="hint">{t('resetRequestHelp')}</p>
            <label>
              {t('email')}
              <input name="email" type="email" autocomplete="email" required />
            </label>
          </>
        )}
        {mode === 'reset' && !resetToken && (
          <label>
            {t('resetCode')}
            <input name="code" autocomplete="one-time-code" required />
          </label>
        )}
        {mode === 'reset' ? (
          <label>
            {t('newPassword')}
            <input name="newPassword" type="password" autocomplete="new-password" required minLength={8} />
          </label>
        ) : mode !== 'forgot' ? (
          <label>
            {t('password')}
            <input name="password" type="password" autocomplete={mode === 'login' ? 'current-password' : 'new-password'} required />
          </label>
        ) : null}
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {action}
        </button>
        {mode === 'login' && (
          <button type="button" class="link" onClick={() => go('forgot')}>
            {t('forgotPassword')}
          </button>
        )}
        {mode === 'login' || mode === 'register' ? (
          <button type="button" class="link" onClick={() => go(mode === 'login' ? 'register' : 'login')}>
            {mode === 'login' ? t('needAccount') : t('haveAccount')}
          </button>
        ) : (
          <button type="button" class="link" onClick={() => go('login')}>
            {t('backToLogin')}
          </button>
        )}
      </form>
    </main>
  );
}
