import nodemailer from 'nodemailer';
import { fileMailer } from './file-mailer.js';

export interface Mail {
  to: string;
  subject: string;
  text: string;
}

/**
 * A link into the web client that carries a token: in the fragment (#), which browsers never send
 * to a server, so it stays out of access logs and Referer headers (reset and verification mails).
 */
export function tokenLink(publicUrl: string, page: string, token: string): string {
  return `${publicUrl.replace(/\/+$/, '')}/${page}#token=${token}`;
}

/** Sends one mail; rejects when it could not be handed over. Callers decide whether that matters. */
export interface Mailer {
  send(mail: Mail): Promise<void>;
  /**
   * Deletes what this transport still holds for `address` (an erased account): the development
   * folder's .eml files to it. A mail handed to an SMTP server has left; nothing to do there.
   */
  forget(address: string): Promise<number>;
}

export interface MailConfig {
  /** smtp[s]://user:pass@host:port. Unset: development mode, mails become .eml files in `MAIL_DIR`. */
  SMTP_URL?: string | undefined;
  MAIL_DIR: string;
  MAIL_FROM: string;
}

/**
 * SMTP when configured, otherwise the development transport. Neither logs a mail's content: reset
 * mails carry a live token, so the only trace of a mail in the logs is the caller's own line.
 */
export function createMailer(config: MailConfig): Mailer {
  if (!config.SMTP_URL) return fileMailer(config.MAIL_DIR, config.MAIL_FROM);
  // nodemailer's own logger stays off (its default): at debug level it would print the message.
  const transport = nodemailer.createTransport(config.SMTP_URL);
  return {
    async send(mail) {
      await transport.sendMail({ from: config.MAIL_FROM, ...mail });
    },
    async forget() {
      return 0;
    },
  };
}
