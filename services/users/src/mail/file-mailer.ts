import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
import { identityKey } from '@parley/contracts';
import type { Mailer } from './mailer.js';

/**
 * Development transport: nodemailer builds the complete RFC 5322 message (the same bytes SMTP would
 * carry) and it is written to `<dir>/<time>-<uuid>.eml`, which any mail client opens. Written to a
 * temporary name and renamed, so a reader polling the folder never sees half a mail; mode 0600,
 * because a reset mail holds a live token.
 */
export function fileMailer(dir: string, from: string): Mailer {
  const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
  let ready: Promise<unknown> | undefined;
  return {
    async send(mail) {
      ready ??= mkdir(dir, { recursive: true }).catch((error: unknown) => {
        ready = undefined;
        throw error;
      });
      await ready;
      const info = await transport.sendMail({ from, ...mail });
      const name = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID()}`;
      const temporary = path.join(dir, `.${name}.tmp`);
      await writeFile(temporary, info.message, { mode: 0o600 });
      await rename(temporary, path.join(dir, `${name}.eml`));
    },
    async forget(address) {
      const wanted = identityKey(address);
      const files = await readdir(dir).catch(() => [] as string[]);
      let deleted = 0;
      for (const file of files.filter((f) => f.endsWith('.eml'))) {
        const text = await readFile(path.join(dir, file), 'utf8').catch(() => '');
        // The To: header as nodemailer writes it (one address, maybe folded onto the next line).
        const to = /^To:\s*(.+)$/im.exec(text)?.[1]?.trim() ?? '';
        if (identityKey(to.replace(/^.*<(.+)>$/, '$1')) !== wanted) continue;
        await unlink(path.join(dir, file)).catch(() => {});
        deleted++;
      }
      return deleted;
    },
  };
}
