import { useState } from 'preact/hooks';
import { login, register } from '../state/session.js';
import { t } from './common.js';

/** Log in or create an account; one form, two modes. */
export function Auth() {
  const [mode, setMode] = useState<'login' | 'register'>('login');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  const submit = async (ev: Event) => {
    ev.preventDefault();
    const form = new FormData(ev.currentTarget as HTMLFormElement);
    const field = (name: string) => String(form.get(name) ?? '').trim();
    setBusy(true);
    setError('');
    try {
      if (mode === 'login') await login(field('login'), String(form.get('password') ?? ''));
      else
        await register({
          username: field('username'),
          email: field('email'),
          password: String(form.get('password') ?? ''),
          ...(field('displayName') ? { displayName: field('displayName') } : {}),
        });
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="auth">
      <h1>{t('appName')}</h1>
      <form onSubmit={submit} aria-labelledby="auth-title">
        <h2 id="auth-title">{mode === 'login' ? t('login') : t('register')}</h2>
        {mode === 'login' ? (
          <label>
            {t('loginField')}
            <input name="login" autocomplete="username" required />
          </label>
        ) : (
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
        <label>
          {t('password')}
          <input name="password" type="password" autocomplete={mode === 'login' ? 'current-password' : 'new-password'} required />
        </label>
        {error && (
          <p role="alert" class="error">
            {error}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {mode === 'login' ? t('login') : t('register')}
        </button>
        <button type="button" class="link" onClick={() => setMode(mode === 'login' ? 'register' : 'login')}>
          {mode === 'login' ? t('needAccount') : t('haveAccount')}
        </button>
      </form>
    </main>
  );
}
