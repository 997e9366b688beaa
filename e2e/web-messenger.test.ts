import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, startStack, type Stack } from './stack.js';
import { call, directChat, launchBrowser, openChat, signIn, SIZES, webDir } from './web-kit.js';

/**
 * The web client's messenger features in Chromium, each at a desktop window and a 375 px phone
 * screen (issue 22): a long chat read as in a messenger (unread divider, grouped messages, actions
 * on hover or tap, infinite scroll that keeps the reading position, jump to a message found by
 * search, search paging), desktop notifications, last seen and live profile changes, images.
 */
describe.each(SIZES)('web client as a messenger ($name)', ({ name: size, options }) => {
  let stack: Stack;
  let browser: Browser;
  const started = Date.now();

  beforeAll(async () => {
    stack = await startStack({ WEB_CLIENT_DIR: webDir });
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
    console.log(`web messenger suite (${size}): ${((Date.now() - started) / 1000).toFixed(1)} s`);
  });

  /** A message's place within the scrolled list: its top relative to the list's top, in px. */
  const offsetIn = (page: Page, text: string) =>
    page.locator('li.message', { hasText: text }).evaluate((li) => li.getBoundingClientRect().top - li.closest('.messages')!.getBoundingClientRect().top);
  /** Whether a message is inside the list's visible part. */
  const inView = (page: Page, text: string) =>
    page.locator('li.message', { hasText: text }).evaluate((li) => {
      const box = li.closest('.messages')!.getBoundingClientRect();
      const r = li.getBoundingClientRect();
      return r.top >= box.top - 1 && r.bottom <= box.bottom + 1;
    });
  const label = (n: number) => `msg ${String(n).padStart(3, '0')}`;

  it('reads a long chat: unread divider, grouped messages, actions on hover or tap, jump from search, search pages, infinite scroll keeping the place', async () => {
    const n = Date.now() % 100000;
    const [anna, boris] = [await register(stack, `rdA${size[0]}${n}`), await register(stack, `rdB${size[0]}${n}`)];
    expect((await call(stack.baseUrl, boris.accessToken, 'PATCH', '/users/me', { displayName: 'Boris Reader' })).status).toBe(200);
    const chat = await directChat(stack.baseUrl, boris, anna);
    // 130 messages of Boris; Anna has read the first 100. Every one has "needle"; one "pomegranate".
    const ids: string[] = [];
    for (let i = 1; i <= 130; i++) {
      const body = `${label(i)} needle${i === 3 ? ' pomegranate' : ''}`;
      const sent = await call<{ id: string }>(stack.baseUrl, boris.accessToken, 'POST', `/chats/${chat.id}/messages`, { clientMsgId: `rd-${i}`, body });
      expect(sent.status).toBe(201);
      ids.push(sent.body.id);
    }
    expect((await call(stack.baseUrl, anna.accessToken, 'POST', `/chats/${chat.id}/read`, { messageId: ids[99] })).status).toBeLessThan(300);

    const context = await browser.newContext({ locale: 'en-US', ...options });
    const page = await context.newPage();
    const pageErrors: string[] = [];
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    try {
      await signIn(page, stack.baseUrl, anna);
      await expect.poll(() => page.locator('.chat-item', { hasText: 'Boris Reader' }).locator('.badge').textContent(), { timeout: 10_000 }).toBe('30');
      await openChat(page, 'Boris Reader');

      // The divider stands above the first unread message, and the chat opens there.
      const divider = page.locator('.unread-divider');
      await divider.waitFor();
      expect(await divider.textContent()).toBe('Unread messages');
      expect(await page.locator('.unread-divider + li.message').getAttribute('aria-label')).toContain('Boris Reader');
      expect(await page.locator('.unread-divider + li.message .body').textContent()).toBe(`${label(101)} needle`);
      expect(await inView(page, label(101))).toBe(true);
      // Boris's run of messages is grouped: the first after the divider starts a group, the next joins it.
      expect(await page.locator('.unread-divider + li.message').getAttribute('class')).not.toContain('grouped');
      expect(await page.locator('li.message', { hasText: label(102) }).getAttribute('class')).toContain('grouped');

      // A message's actions are out of sight until a pointer rests on it (desktop) or a tap (phone).
      const item = page.locator('li.message', { hasText: label(105) });
      const opacity = () => item.locator('.actions').evaluate((el) => el.ownerDocument.defaultView!.getComputedStyle(el).opacity);
      await item.locator('.body').scrollIntoViewIfNeeded();
      if (size === 'desktop') await page.mouse.move(1, 1);
      expect(await opacity()).toBe('0');
      if (size === 'desktop') await item.locator('.body').hover();
      else await item.locator('.body').tap();
      await expect.poll(opacity).toBe('1');

      // Search pages: 130 matches come 50, then 100, then all, and the button goes.
      await page.getByRole('navigation').getByRole('button', { name: 'Search' }).click();
      await page.getByLabel('Words to find').fill('needle');
      await page.getByLabel('Words to find').press('Enter');
      const results = page.locator('ul.results > li');
      await expect.poll(() => results.count()).toBe(50);
      await page.getByRole('button', { name: 'Show more' }).click();
      await expect.poll(() => results.count()).toBe(100);
      await page.getByRole('button', { name: 'Show more' }).click();
      await expect.poll(() => results.count()).toBe(130);
      await page.getByRole('button', { name: 'Show more' }).waitFor({ state: 'detached' });

      // A result two pages back in the chat: the chat opens there, the message marked.
      await page.getByLabel('Words to find').fill('pomegranate');
      await page.getByLabel('Words to find').press('Enter');
      await expect.poll(() => results.count()).toBe(1);
      await results.first().getByRole('button').click();
      await page.locator('li.message.highlighted', { hasText: label(3) }).waitFor();
      expect(await inView(page, label(3))).toBe(true);

      // Infinite scroll from a fresh load: at the top, the previous page comes in above, and what
      // the reader looked at stays where it was.
      await page.reload();
      await page.locator('li.message', { hasText: label(130) }).waitFor();
      expect(await page.locator('li.message', { hasText: label(80) }).count()).toBe(0);
      const before = await page.locator('.messages').evaluate((el, text) => {
        el.scrollTop = 0;
        const li = [...el.querySelectorAll('li.message')].find((x) => x.textContent?.includes(text))!;
        return li.getBoundingClientRect().top - el.getBoundingClientRect().top;
      }, label(81));
      await page.locator('li.message', { hasText: label(80) }).waitFor({ state: 'attached' });
      await expect.poll(async () => Math.abs((await offsetIn(page, label(81))) - before), { timeout: 5_000 }).toBeLessThan(3);
      // ... and on to the first message, where nothing older is offered.
      await page.locator('.messages').evaluate((el) => (el.scrollTop = 0));
      await page.locator('li.message', { hasText: label(1) }).waitFor({ state: 'attached' });
      await page.getByRole('button', { name: 'Load older messages' }).waitFor({ state: 'detached' });
      expect(await page.locator('li.message').count()).toBe(130);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);
});
