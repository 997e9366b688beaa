import { mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { register, startStack, type Account, type Stack } from './stack.js';
import { artifacts, call, directChat, launchBrowser, openChat, root, signIn, SIZES, webDir } from './web-kit.js';

/**
 * Every main screen of the web client at a desktop window and a phone screen: an axe-core scan
 * (WCAG 2.1 A and AA rules) that must find nothing serious or critical, and a screenshot. The
 * screenshots go to test-results/web/screens/; `npm run docs:screenshots` writes them to
 * docs/web/ as well, where docs/web-client.md shows them.
 */
const axeSource = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const screensDir = path.join(artifacts, 'screens');
const docsDir = process.env.WEB_SCREENSHOTS_DOCS === '1' ? path.join(root, 'docs/web') : null;

interface Finding {
  id: string;
  impact: string;
  help: string;
  targets: string[];
}

/** axe's serious and critical findings on the page as it is now. */
async function scan(page: Page): Promise<Finding[]> {
  if (!(await page.evaluate(() => 'axe' in globalThis))) await page.addScriptTag({ content: axeSource });
  return page.evaluate(async () => {
    const axe = (globalThis as any).axe;
    const result = await axe.run((globalThis as any).document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations
      .filter((v: any) => v.impact === 'serious' || v.impact === 'critical')
      .map((v: any) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n: any) => String(n.target)) }));
  });
}

describe.each(SIZES)('web client screens ($name)', ({ name: size, options }) => {
  let stack: Stack;
  let browser: Browser;

  beforeAll(async () => {
    stack = await startStack({ WEB_CLIENT_DIR: webDir });
    browser = await launchBrowser();
    mkdirSync(screensDir, { recursive: true });
    if (docsDir) mkdirSync(docsDir, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it('every main screen passes an axe scan with nothing serious, light and dark, and is photographed', async () => {
    const n = Date.now() % 100000;
    const names = ['Anna Petrova', 'Boris Ivanov', 'Carla Mendes'];
    const [anna, boris, carla] = await Promise.all(['scA', 'scB', 'scC'].map((p) => register(stack, `${p}${size[0]}${n}`)));
    const people: Account[] = [anna!, boris!, carla!];
    for (const [i, who] of people.entries()) expect((await call(stack.baseUrl, who.accessToken, 'PATCH', '/users/me', { displayName: names[i], bio: 'Here to test the screens.' })).status).toBe(200);
    const direct = await directChat(stack.baseUrl, boris!, anna!);
    const say = async (who: Account, chatId: string, body: string, extra: Record<string, unknown> = {}) => {
      const sent = await call<{ id: string }>(stack.baseUrl, who.accessToken, 'POST', `/chats/${chatId}/messages`, { clientMsgId: `sc-${Math.random().toString(36).slice(2)}`, body, ...extra });
      expect(sent.status).toBe(201);
      return sent.body.id;
    };
    const hello = await say(boris!, direct.id, 'Hi Anna! Are we still on for Saturday?');
    await say(boris!, direct.id, 'I can bring the tent.');
    await say(anna!, direct.id, 'Yes! See https://example.org/route for the route.', { replyTo: hello });
    expect((await call(stack.baseUrl, anna!.accessToken, 'POST', `/messages/${hello}/reactions`, { emoji: '👍' })).status).toBeLessThan(300);
    const picture = await sharp({ create: { width: 640, height: 400, channels: 3, background: '#4a7fb5' } }).png().toBuffer();
    const form = new FormData();
    form.append('file', new Blob([picture], { type: 'image/png' }), 'lake.png');
    const uploaded = (await (await fetch(`${stack.baseUrl}/api/v1/attachments`, { method: 'POST', headers: { authorization: `Bearer ${boris!.accessToken}` }, body: form })).json()) as { id: string };
    await say(boris!, direct.id, 'The lake last year', { attachmentIds: [uploaded.id] });
    const group = await call<{ id: string }>(stack.baseUrl, carla!.accessToken, 'POST', '/chats', { type: 'group', title: 'Weekend trip', memberIds: [anna!.id, boris!.id] });
    expect(group.status).toBe(201);
    await say(carla!, group.body.id, 'Who drives?');
    expect((await call(stack.baseUrl, carla!.accessToken, 'POST', `/chats/${group.body.id}/polls`, { question: 'Leave at', options: ['8:00', '9:30'] })).status).toBe(201);
    expect((await call(stack.baseUrl, anna!.accessToken, 'POST', '/contacts', { userId: boris!.id })).status).toBe(201);

    const findings: Record<string, Finding[]> = {};
    for (const scheme of ['light', 'dark'] as const) {
      const context = await browser.newContext({ locale: 'en-US', ...options, colorScheme: scheme, bypassCSP: true });
      const page = await context.newPage();
      const shoot = async (screen: string) => {
        // Nothing hovered, nothing focused by the last click: the screen as it rests.
        if (size === 'desktop') await page.mouse.move(1, 1);
        await page.evaluate(() => (globalThis as any).document.activeElement?.blur());
        findings[`${screen} (${scheme})`] = await scan(page);
        const file = `${screen}-${size}${scheme === 'dark' ? '-dark' : ''}.png`;
        await page.screenshot({ path: path.join(screensDir, file) });
        if (docsDir && (scheme === 'light' || screen === 'chat')) await page.screenshot({ path: path.join(docsDir, file) });
      };
      try {
        await page.goto(stack.baseUrl);
        await page.getByLabel('Username or e-mail').waitFor();
        await shoot('login');
        await signIn(page, stack.baseUrl, anna!);
        if (size === 'phone') await shoot('chats');
        await openChat(page, 'Boris Ivanov');
        await page.locator('.thumb img').waitFor();
        await shoot('chat');
        await page.getByRole('button', { name: 'Open the image lake.png' }).click();
        await page.locator('dialog.viewer img').waitFor();
        await shoot('viewer');
        await page.keyboard.press('Escape');
        if (size === 'phone') await page.getByRole('button', { name: 'Back' }).click();
        await openChat(page, 'Weekend trip');
        await page.getByRole('button', { name: 'Chat settings' }).click();
        await page.getByRole('region', { name: 'Chat settings' }).waitFor();
        await shoot('group-settings');
        await page.getByRole('navigation').getByRole('button', { name: 'People' }).click();
        await page.locator('li.person', { hasText: 'Boris Ivanov' }).waitFor();
        await shoot('people');
        await page.getByRole('navigation').getByRole('button', { name: 'Search' }).click();
        await page.getByLabel('Words to find').fill('tent');
        await page.getByLabel('Words to find').press('Enter');
        await page.locator('ul.results mark').first().waitFor();
        await shoot('search');
        await page.getByRole('navigation').getByRole('button', { name: 'Profile' }).click();
        await page.getByLabel('About').waitFor();
        await shoot('profile');
      } finally {
        await context.close();
      }
    }
    expect(findings).toEqual(Object.fromEntries(Object.keys(findings).map((k) => [k, []])));
  }, 120_000);
});
