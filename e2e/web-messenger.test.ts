import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, startStack, type Account, type Stack } from './stack.js';
import { call, directChat, launchBrowser, openChat, openPage, signIn, SIZES, webDir } from './web-kit.js';

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

    const { context, page, pageErrors } = await openPage(browser, options);
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
      await expect.poll(opacity, { timeout: 10_000 }).toBe('1');

      // Search pages: 130 matches come 50, then 100, then all, and the button goes.
      await page.getByRole('navigation').getByRole('button', { name: 'Search' }).click();
      await page.getByLabel('Words to find').fill('needle');
      await page.getByLabel('Words to find').press('Enter');
      const results = page.locator('ul.results > li');
      await expect.poll(() => results.count(), { timeout: 10_000 }).toBe(50);
      await page.getByRole('button', { name: 'Show more' }).click();
      await expect.poll(() => results.count(), { timeout: 10_000 }).toBe(100);
      await page.getByRole('button', { name: 'Show more' }).click();
      await expect.poll(() => results.count(), { timeout: 10_000 }).toBe(130);
      await page.getByRole('button', { name: 'Show more' }).waitFor({ state: 'detached' });

      // A result two pages back in the chat: the chat opens there, the message marked.
      await page.getByLabel('Words to find').fill('pomegranate');
      await page.getByLabel('Words to find').press('Enter');
      await expect.poll(() => results.count(), { timeout: 10_000 }).toBe(1);
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
      // Scrolled far up, a new message does not move the list: a button counts it and leads there.
      const late = await call(stack.baseUrl, boris.accessToken, 'POST', `/chats/${chat.id}/messages`, { clientMsgId: 'rd-late', body: 'a late one' });
      expect(late.status).toBe(201);
      const toNewest = page.getByRole('button', { name: '↓ New messages: 1' });
      await toNewest.waitFor({ timeout: 10_000 });
      expect(await inView(page, 'a late one')).toBe(false);
      await toNewest.click();
      await expect.poll(() => inView(page, 'a late one'), { timeout: 10_000 }).toBe(true);
      await toNewest.waitFor({ state: 'detached' });
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);

  it('notifies of new messages when enabled (not of a muted chat), shows last seen, and changes names live', async () => {
    const n = Date.now() % 100000;
    const [anna, boris, carl] = [await register(stack, `ntA${size[0]}${n}`), await register(stack, `ntB${size[0]}${n}`), await register(stack, `ntC${size[0]}${n}`)];
    expect((await call(stack.baseUrl, boris.accessToken, 'PATCH', '/users/me', { displayName: 'Boris Notifier' })).status).toBe(200);
    const direct = await directChat(stack.baseUrl, boris, anna);
    const quiet = await call<{ id: string }>(stack.baseUrl, carl.accessToken, 'POST', '/chats', { type: 'group', title: 'Quiet group', memberIds: [anna.id] });
    expect(quiet.status).toBe(201);
    const say = async (who: Account, chatId: string, body: string) =>
      expect((await call(stack.baseUrl, who.accessToken, 'POST', `/chats/${chatId}/messages`, { clientMsgId: `nt-${body.replace(/\W/g, '')}`, body })).status).toBe(201);

    // The browser allows notifications; the page's Notification records what it is asked to show
    // (and still shows it): headless Chromium has no notification centre to look into.
    const context = await browser.newContext({ locale: 'en-US', ...options, permissions: ['notifications'] });
    await context.addInitScript(() => {
      // Runs in the page (the e2e TypeScript project has no DOM types, hence the loose typing).
      const w = globalThis as any;
      const Real = w.Notification;
      const shown: { title: string; body?: string; tag?: string }[] = [];
      w.shown = shown;
      function Recorded(title: string, options?: { body?: string; tag?: string }) {
        shown.push({ title, body: options?.body, tag: options?.tag });
        return new Real(title, options);
      }
      Object.defineProperty(Recorded, 'permission', { get: () => Real.permission });
      (Recorded as any).requestPermission = (...args: unknown[]) => Real.requestPermission(...args);
      w.Notification = Recorded;
    });
    const page = await context.newPage();
    const shown = () => page.evaluate(() => (globalThis as any).shown as { title: string; body?: string; tag?: string }[]);
    // Boris is online in a browser of his own, so his going away can be seen.
    const borisContext = await browser.newContext({ locale: 'en-US', viewport: { width: 900, height: 700 } });
    const borisPage = await borisContext.newPage();
    try {
      await signIn(page, stack.baseUrl, anna);
      await page.getByRole('navigation').getByRole('button', { name: 'Profile' }).click();
      const toggle = page.getByLabel(/Show a desktop notification/);
      expect(await toggle.isChecked()).toBe(false);
      await toggle.check();
      await expect.poll(() => toggle.isChecked(), { timeout: 10_000 }).toBe(true);
      // Anna mutes the group (its settings panel), then reads her profile page while messages come.
      await page.getByRole('navigation').getByRole('button', { name: 'Chats' }).click();
      await openChat(page, 'Quiet group');
      await page.getByRole('button', { name: 'Chat settings' }).click();
      await page.getByLabel(/Mute/).check();
      await page.getByRole('navigation').getByRole('button', { name: 'Profile' }).click();
      await say(carl, quiet.body.id, 'hush, muted');
      await say(boris, direct.id, 'ping one');
      await expect.poll(async () => (await shown()).map((x) => `${x.title}: ${x.body}`), { timeout: 10_000 }).toContain('Boris Notifier: ping one');
      // The muted chat's message came first and was delivered (its badge counts), but not notified.
      await expect.poll(() => page.title(), { timeout: 10_000 }).toMatch(/^\(1\) Parley$/);
      expect((await shown()).map((x) => x.body)).toEqual(['ping one']);
      expect((await shown())[0]!.tag).toBe(direct.id);
      // Turned off: no more notifications (the next message's badge is the positive signal).
      await page.getByLabel(/Show a desktop notification/).uncheck();
      await say(boris, direct.id, 'ping two');
      await expect.poll(() => page.title(), { timeout: 10_000 }).toBe('(2) Parley');
      expect((await shown()).map((x) => x.body)).toEqual(['ping one']);

      // Last seen: Boris online, then gone; Anna's header says when, also after a reload.
      await signIn(borisPage, stack.baseUrl, boris);
      await page.getByRole('navigation').getByRole('button', { name: 'Chats' }).click();
      await openChat(page, 'Boris Notifier');
      await expect.poll(() => page.locator('.chat-header .status').textContent(), { timeout: 10_000 }).toBe('online');
      await borisContext.close();
      await expect.poll(() => page.locator('.chat-header .status').textContent(), { timeout: 15_000 }).toBe('last seen just now');
      // The page's read of Boris's profile after the reload is answered, then held until after his
      // rename has arrived live: a read and a frame can cross like that on a busy server, and the
      // read's older name must not replace the newer one.
      let answerRead = () => {};
      let readWasAnswered = () => {};
      const readHeld = new Promise<void>((resolve) => (answerRead = resolve));
      const readAnswered = new Promise<void>((resolve) => (readWasAnswered = resolve));
      await page.route(`**/api/v1/users/${boris.id}`, async (route) => {
        const response = await route.fetch();
        await readHeld;
        await route.fulfill({ response });
        readWasAnswered();
      });
      await page.reload();
      await expect.poll(() => page.locator('.chat-header .status').textContent(), { timeout: 10_000 }).toBe('last seen just now');

      // Boris renames himself: Anna's chat list and header change without a reload.
      expect((await call(stack.baseUrl, boris.accessToken, 'PATCH', '/users/me', { displayName: 'Boris Renamed' })).status).toBe(200);
      await page.locator('#chat-title', { hasText: 'Boris Renamed' }).waitFor({ timeout: 10_000 });
      answerRead();
      await readAnswered;
      // Positive signal that the page has handled the read's answer: a message sent after it is shown.
      await say(boris, direct.id, 'after the read');
      await page.locator('.message', { hasText: 'after the read' }).waitFor({ timeout: 10_000 });
      expect(await page.locator('#chat-title').textContent()).toBe('Boris Renamed');
      await page.locator('.chat-item', { hasText: 'Boris Renamed' }).waitFor({ state: 'attached', timeout: 10_000 });
    } finally {
      await borisContext.close().catch(() => undefined);
      await context.close();
    }
  }, 120_000);

  it('sends several files at once (picked, pasted, dropped, one taken back) and shows images as previews that open in a viewer', async () => {
    const n = Date.now() % 100000;
    const [anna, boris] = [await register(stack, `imA${size[0]}${n}`), await register(stack, `imB${size[0]}${n}`)];
    expect((await call(stack.baseUrl, boris.accessToken, 'PATCH', '/users/me', { displayName: 'Boris Viewer' })).status).toBe(200);
    await directChat(stack.baseUrl, anna, boris);
    const photo = await sharp({ create: { width: 800, height: 600, channels: 3, background: '#3366cc' } }).png().toBuffer();
    const pasted = await sharp({ create: { width: 200, height: 100, channels: 3, background: '#cc6633' } }).png().toBuffer();

    const { context, page, pageErrors } = await openPage(browser, options);
    try {
      await signIn(page, stack.baseUrl, anna);
      await openChat(page, 'Boris Viewer');
      // Two files picked at once.
      await page.locator('#composer-file').setInputFiles([
        { name: 'photo.png', mimeType: 'image/png', buffer: photo },
        { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('plain notes') },
      ]);
      const attached = page.locator('.pending-attachments li');
      await expect.poll(() => attached.count(), { timeout: 10_000 }).toBe(2);
      // A picture pasted into the box, and a file dropped on the chat.
      await page.locator('#composer-text').evaluate((box, base64) => {
        const w = globalThis as any;
        const bytes = Uint8Array.from(w.atob(base64), (c: string) => c.charCodeAt(0));
        const data = new w.DataTransfer();
        data.items.add(new w.File([bytes], 'pasted.png', { type: 'image/png' }));
        box.dispatchEvent(new w.ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }));
      }, pasted.toString('base64'));
      await expect.poll(() => attached.count(), { timeout: 10_000 }).toBe(3);
      await page.locator('.chat-view').evaluate((view) => {
        const w = globalThis as any;
        const data = new w.DataTransfer();
        data.items.add(new w.File(['dropped text'], 'dropped.txt', { type: 'text/plain' }));
        view.dispatchEvent(new w.DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
        view.dispatchEvent(new w.DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
      });
      await expect.poll(() => attached.count(), { timeout: 10_000 }).toBe(4);
      expect(await attached.allTextContents()).toEqual(['📎 photo.png ×Remove photo.png', '📎 notes.txt ×Remove notes.txt', '📎 pasted.png ×Remove pasted.png', '📎 dropped.txt ×Remove dropped.txt']);
      // Taken back: gone from the box and from the server.
      await page.getByRole('button', { name: 'Remove dropped.txt' }).click();
      await expect.poll(() => attached.count(), { timeout: 10_000 }).toBe(3);
      await expect
        .poll(async () => ((await call<{ attachments: { name: string }[] }>(stack.baseUrl, anna.accessToken, 'GET', '/users/me/export')).body.attachments ?? []).map((a) => a.name).sort(), { timeout: 10_000 })
        .toEqual(['notes.txt', 'pasted.png', 'photo.png']);

      await page.getByRole('button', { name: 'Send', exact: true }).click();
      const sent = page.locator('li.message:not(.pending)', { hasText: 'notes.txt' });
      await sent.waitFor();
      // Images as previews made by the server (at most 320 px), the text file as a download.
      const thumbs = sent.locator('.thumb img');
      await expect.poll(() => thumbs.count(), { timeout: 10_000 }).toBe(2);
      const sizes = async () => thumbs.evaluateAll((imgs) => imgs.map((img) => `${(img as any).naturalWidth}x${(img as any).naturalHeight}`));
      await expect.poll(sizes, { timeout: 10_000 }).toEqual(['320x240', '200x100']);
      expect(await sent.getByRole('button', { name: 'Download notes.txt' }).count()).toBe(1);

      // The viewer: the whole image, closed with Escape.
      await sent.getByRole('button', { name: 'Open the image photo.png' }).click();
      const viewer = page.locator('dialog.viewer');
      await viewer.locator('img').waitFor();
      await expect.poll(() => viewer.locator('img').evaluate((img) => (img as any).naturalWidth), { timeout: 10_000 }).toBe(800);
      expect(await viewer.evaluate((d) => (d as any).open)).toBe(true);
      await page.keyboard.press('Escape');
      await expect.poll(() => viewer.evaluate((d) => (d as any).open), { timeout: 10_000 }).toBe(false);
      expect(pageErrors).toEqual([]);
    } finally {
      await context.close();
    }
  }, 120_000);
});
