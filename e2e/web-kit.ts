import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { expect } from 'vitest';
import type { Account } from './stack.js';

/**
 * What the browser suites share: Debian's Chromium driven by playwright-core against the built
 * client that the gateway serves, the two window sizes every flow is tried at, and sign-in.
 */
export const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
export const webDir = path.join(root, 'clients/web/dist');
export const artifacts = path.join(root, 'test-results/web');
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
// Headless on a closed network: nothing may try to reach Google's services.
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/** A desktop window and a phone screen (issue 22 asks for every flow at 375 px too). */
export const SIZES: { name: 'desktop' | 'phone'; options: BrowserContextOptions }[] = [
  { name: 'desktop', options: { viewport: { width: 1100, height: 760 } } },
  { name: 'phone', options: { viewport: { width: 375, height: 740 }, isMobile: true, hasTouch: true } },
];

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(path.join(webDir, 'index.html'))) throw new Error(`${webDir} is missing: build the client first (npm run build)`);
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y --no-install-recommends chromium`);
  // launch() gives the browser a fresh temporary user-data-dir, removed on close.
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
}

/** A new browser context in English with one page, and the page's uncaught errors as they happen. */
export async function openPage(browser: Browser, options: BrowserContextOptions): Promise<{ context: BrowserContext; page: Page; pageErrors: string[] }> {
  const context = await browser.newContext({ locale: 'en-US', ...options });
  const page = await context.newPage();
  const pageErrors: string[] = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  return { context, page, pageErrors };
}

/**
 * Signs in with the English login form and waits for the chats, unless told not to (when a test
 * holds back what the page reads to show them: holdFirstRead).
 */
export async function signIn(page: Page, baseUrl: string, account: { username: string; password: string }, waitForChats = true): Promise<void> {
  await page.goto(baseUrl);
  await page.getByLabel('Username or e-mail').fill(account.username);
  await page.getByLabel('Password', { exact: true }).fill(account.password);
  await page.locator('form button[type=submit]').click();
  if (waitForChats) await page.getByRole('navigation').getByRole('button', { name: 'Chats' }).waitFor();
}

/**
 * Resolves once the page's WebSocket has got `resumed`: the gateway has then subscribed it to the
 * user's chats, so a message sent after it reaches the page live (protocol.md, Resume). Call it
 * before the page connects.
 */
export function socketResumed(page: Page): Promise<void> {
  return new Promise((resolve) => {
    page.on('websocket', (ws) => {
      ws.on('framereceived', ({ payload }) => {
        if (typeof payload === 'string' && payload.includes('"op":"resumed"')) resolve();
      });
    });
  });
}

/**
 * Holds back the first GET whose address `matches`: the server answers at once, as it has the data
 * then, and the page gets that answer only on `release()`. For the races between what the page
 * reads from the projection and live events; `read` resolves once the server has answered.
 */
export async function holdFirstRead(page: Page, matches: (url: URL) => boolean): Promise<{ read: Promise<void>; release: () => void }> {
  let answered!: () => void;
  const read = new Promise<void>((resolve) => (answered = resolve));
  let release!: () => void;
  const released = new Promise<void>((resolve) => (release = resolve));
  let held = false;
  await page.route(matches, async (route) => {
    if (held || route.request().method() !== 'GET') return route.continue();
    held = true;
    const response = await route.fetch();
    answered();
    await released;
    await route.fulfill({ response });
  });
  return { read, release };
}

/** One API call as `token`'s user; the answer's JSON (undefined for 204). */
export async function call<T = any>(baseUrl: string, token: string, method: string, route: string, body?: unknown): Promise<{ status: number; body: T }> {
  const response = await fetch(`${baseUrl}/api/v1${route}`, {
    method,
    headers: { ...(body === undefined ? {} : { 'content-type': 'application/json' }), authorization: `Bearer ${token}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? (JSON.parse(text) as T) : (undefined as T) };
}

/** A direct chat of `a` with `b`, made over the API. */
export async function directChat(baseUrl: string, a: Account, b: Account): Promise<{ id: string }> {
  const made = await call<{ id: string }>(baseUrl, a.accessToken, 'POST', '/chats', { type: 'direct', userId: b.id });
  expect(made.status).toBe(201);
  return made.body;
}

/** A poll `who` posts in a chat; its id and its options' ids, in the order given. */
export async function postPoll(baseUrl: string, who: Account, chatId: string, question: string, options: string[]): Promise<{ id: string; optionIds: string[] }> {
  const posted = await call<{ poll: { id: string; options: { id: string }[] } }>(baseUrl, who.accessToken, 'POST', `/chats/${chatId}/polls`, { question, options });
  expect(posted.status).toBe(201);
  return { id: posted.body.poll.id, optionIds: posted.body.poll.options.map((o) => o.id) };
}

/** Opens a chat from the list (on a phone the list is the first screen; on a desktop it stays). */
export async function openChat(page: Page, title: string): Promise<void> {
  await page.locator('.chat-item', { hasText: title }).click();
  await page.locator('#chat-title', { hasText: title }).waitFor();
}
