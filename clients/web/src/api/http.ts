import type { TokenStore } from './tokens.js';
import { ApiError, type Attachment, type Chat, type Message, type MessagePage, type Page, type Poll, type Session, type Tokens, type User } from './types.js';

export interface RequestOptions {
  body?: unknown;
  query?: Record<string, string | number | undefined>;
}

/**
 * The HTTP half of the contract. Adds the bearer token, and on a 401 refreshes once (rotating the
 * refresh token) and repeats the call; when the refresh fails too, the session is over and
 * `onSignedOut` fires.
 */
export class HttpApi {
  private refreshing: Promise<boolean> | null = null;
  onSignedOut: () => void = () => {};

  constructor(
    readonly baseUrl: string,
    readonly tokens: TokenStore,
  ) {}

  get signedIn(): boolean {
    return this.tokens.load() !== null;
  }

  get accessToken(): string | null {
    return this.tokens.load()?.accessToken ?? null;
  }

  url(path: string, query?: RequestOptions['query']): string {
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') params.set(k, String(v));
    const qs = params.toString();
    return `${this.baseUrl}/api/v1${path}${qs ? `?${qs}` : ''}`;
  }

  /** One call; `auth: false` for the public auth routes. */
  async request<T>(method: string, path: string, options: RequestOptions = {}, auth = true): Promise<T> {
    const response = await this.send(method, path, options, auth);
    // Only a refused token is renewed and the call asked again: a 401 for a password typed wrong
    // (`invalid_credentials`, deleting the account) is the answer, and asking again would count the
    // guess twice. refresh() itself signs out when the server refuses it; a network error or 503
    // during it keeps the session, and this call's answer stands (it signed the user out before).
    if (response.status === 401 && auth && (await tokenRefused(response)) && (await this.refresh())) {
      return this.parse<T>(await this.send(method, path, options, auth));
    }
    return this.parse<T>(response);
  }

  /** A GET whose answer is a file: returns it as a Blob (attachments, the data export). */
  async download(path: string): Promise<Blob> {
    let response = await fetch(this.url(path), { headers: this.authHeader() });
    if (response.status === 401 && (await this.refresh())) response = await fetch(this.url(path), { headers: this.authHeader() });
    if (!response.ok) await this.parse(response);
    return response.blob();
  }

  /**
   * Trades the refresh token for a new pair. Concurrent callers share one attempt: with rotation,
   * a second refresh with the same token would be refused as reuse, which ends the session. Tabs
   * of one browser share the tokens (localStorage), so they take turns too (a Web Lock, where the
   * browser has them): a tab that finds the refresh token changed while it waited takes the pair
   * another tab got instead of refreshing again. Before, two tabs renewing at the same expiry
   * (every tab renews a minute before it) sent one refresh token twice and lost the session.
   */
  refresh(): Promise<boolean> {
    const seen = this.tokens.load()?.refreshToken;
    const locks = (globalThis as { navigator?: { locks?: { request<T>(name: string, work: () => Promise<T>): Promise<T> } } }).navigator?.locks;
    this.refreshing ??= (locks ? locks.request('parley.refresh', () => this.refreshNow(seen)) : this.refreshNow(seen)).finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** One refresh, unless the stored refresh token is no longer `seen` (another tab refreshed: taken as done). */
  private async refreshNow(seen: string | undefined): Promise<boolean> {
    const current = this.tokens.load();
    if (!current) {
      // Signed out in another tab (the tokens are shared): this tab's session is over too.
      this.onSignedOut();
      return false;
    }
    if (seen !== undefined && current.refreshToken !== seen) return true;
    try {
      const tokens = await this.parse<Tokens>(await this.send('POST', '/auth/refresh', { body: { refreshToken: current.refreshToken } }, false));
      this.tokens.save({ accessToken: tokens.accessToken, refreshToken: tokens.refreshToken });
      return true;
    } catch (error) {
      // Only a refusal ends the session; a network error or 503 leaves the tokens for a retry.
      if (error instanceof ApiError && error.status >= 400 && error.status < 500) this.signOutLocally();
      return false;
    }
  }

  signOutLocally(): void {
    if (!this.tokens.load()) return;
    this.tokens.save(null);
    this.onSignedOut();
  }

  authHeader(): Record<string, string> {
    const token = this.accessToken;
    return token ? { authorization: `Bearer ${token}` } : {};
  }

  private send(method: string, path: string, options: RequestOptions, auth: boolean): Promise<Response> {
    const headers: Record<string, string> = auth ? this.authHeader() : {};
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    return fetch(this.url(path, options.query), { method, headers, body });
  }

  private async parse<T>(response: Response): Promise<T> {
    const text = await response.text();
    let json: unknown;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!response.ok) {
      const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
      throw new ApiError(response.status, error?.code ?? 'http_error', error?.message ?? `HTTP ${response.status}`);
    }
    return json as T;
  }
}

/** Typed routes of api.md, one method each. */
export class Api extends HttpApi {
  private keep(session: Session): Session {
    this.tokens.save({ accessToken: session.accessToken, refreshToken: session.refreshToken });
    return session;
  }

  async register(body: { username: string; email: string; password: string; displayName?: string }): Promise<Session> {
    return this.keep(await this.request<Session>('POST', '/auth/register', { body }, false));
  }
  async login(login: string, password: string): Promise<Session> {
    return this.keep(await this.request<Session>('POST', '/auth/login', { body: { login, password } }, false));
  }
  async logout(): Promise<void> {
    try {
      await this.request('POST', '/auth/logout');
    } finally {
      this.signOutLocally();
    }
  }

  requestReset = (email: string) => this.request<void>('POST', '/auth/password-reset/request', { body: { email } }, false);
  confirmReset = (token: string, newPassword: string) => this.request<void>('POST', '/auth/password-reset/confirm', { body: { token, newPassword } }, false);
  verifyEmail = (token: string) => this.request<void>('POST', '/auth/verify-email', { body: { token } }, false);
  me = () => this.request<User>('GET', '/users/me');
  updateMe = (body: { displayName?: string; bio?: string }) => this.request<User>('PATCH', '/users/me', { body });
  user = (id: string) => this.request<User>('GET', `/users/${id}`);
  findUsers = (query: string) => this.request<Page<User>>('GET', '/users', { query: { query } });
  exportData = () => this.download('/users/me/export');
  deleteAccount = (password: string) => this.request<unknown>('DELETE', '/users/me', { body: { password } });
  contacts = (before?: string) => this.request<Page<User>>('GET', '/contacts', { query: { before, limit: 200 } });
  addContact = (userId: string) => this.request<User>('POST', '/contacts', { body: { userId } });
  removeContact = (userId: string) => this.request<void>('DELETE', `/contacts/${userId}`);

  /**
   * The first page without `limit`, as the server caches it per user (api.md: 50 chats, from Redis
   * until one of them changes); the next ones 200 at a time.
   */
  chats = (before?: string) => this.request<Page<Chat>>('GET', '/chats', { query: before ? { before, limit: 200 } : {} });
  /** Every item of a paginated list, following `nextCursor` to the last page. */
  async all<T>(page: (before?: string) => Promise<Page<T>>): Promise<T[]> {
    const items: T[] = [];
    for (let before: string | undefined; ; ) {
      const answer = await page(before);
      items.push(...answer.items);
      if (!answer.nextCursor) return items;
      before = answer.nextCursor;
    }
  }
  chat = (id: string) => this.request<Chat>('GET', `/chats/${id}`);
  renameChat = (id: string, title: string) => this.request<Chat>('PATCH', `/chats/${id}`, { body: { title } });
  addMember = (id: string, userId: string) => this.request<Chat>('POST', `/chats/${id}/members`, { body: { userId } });
  removeMember = (id: string, userId: string) => this.request<void>('DELETE', `/chats/${id}/members/${userId}`);
  openDirect = (userId: string) => this.request<Chat>('POST', '/chats', { body: { type: 'direct', userId } });
  createGroup = (title: string, memberIds: string[]) => this.request<Chat>('POST', '/chats', { body: { type: 'group', title, memberIds } });
  markRead = (chatId: string, messageId: string) => this.request<void>('POST', `/chats/${chatId}/read`, { body: { messageId } });

  messages = (chatId: string, before?: string) => this.request<MessagePage>('GET', `/chats/${chatId}/messages`, { query: { before, limit: 50 } });
  /** The members' read positions (a Parley addition): the "Read" marks of a chat just loaded. */
  reads = (chatId: string) => this.request<{ items: { userId: string; seq: number }[] }>('GET', `/chats/${chatId}/reads`);
  postMessage = (chatId: string, body: { clientMsgId: string; body: string; replyTo?: string; attachmentIds?: string[] }) =>
    this.request<Message>('POST', `/chats/${chatId}/messages`, { body });
  editMessage = (id: string, body: string) => this.request<Message>('PATCH', `/messages/${id}`, { body: { body } });
  deleteMessage = (id: string) => this.request<void>('DELETE', `/messages/${id}`);
  react = (id: string, emoji: string) => this.request<unknown>('POST', `/messages/${id}/reactions`, { body: { emoji } });
  unreact = (id: string, emoji: string) => this.request<void>('DELETE', `/messages/${id}/reactions/${encodeURIComponent(emoji)}`);
  createPoll = (chatId: string, question: string, options: string[], multiple: boolean) =>
    this.request<Message>('POST', `/chats/${chatId}/polls`, { body: { question, options, multiple } });
  vote = (pollId: string, optionIds: string[]) => this.request<Poll>('POST', `/polls/${pollId}/votes`, { body: { optionIds } });
  closePoll = (pollId: string) => this.request<Poll>('POST', `/polls/${pollId}/close`);
  search = (q: string, chatId?: string, before?: string) => this.request<Page<Message>>('GET', '/search', { query: { q, chatId, before } });
  attachment = (id: string) => this.download(`/attachments/${id}`);
  /** A WebP preview (at most 320×320) of an image attachment (a Parley addition). */
  thumbnail = (id: string) => this.download(`/attachments/${id}/thumbnail`);
  /** Deletes an upload no message carries yet (taken back from the composer). */
  deleteAttachment = (id: string) => this.request<void>('DELETE', `/attachments/${id}`);
}

export type { Attachment };

/** Whether a 401 is about the access token (`unauthorized`), not a credential in the request. */
async function tokenRefused(response: Response): Promise<boolean> {
  const body = (await response.clone().json().catch(() => null)) as { error?: { code?: unknown } } | null;
  return body?.error?.code === 'unauthorized';
}
