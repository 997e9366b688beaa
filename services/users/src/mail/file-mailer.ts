import { randomUUID } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import nodemailer from 'nodemailer';
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
  };
}
