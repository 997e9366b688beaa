import { tokenLink, type Mail } from '../mail/mailer.js';

/**
 * The reset mail. The token rides in the link's fragment (#), which browsers never send to a server,
 * so it stays out of web-server access logs and Referer headers; it is also printed on a line of
 * its own for clients that take it typed or pasted.
 */
export function resetMail(to: string, token: string, publicUrl: string, ttlSeconds: number): Mail {
  const link = tokenLink(publicUrl, 'reset-password', token);
  const minutes = Math.max(1, Math.round(ttlSeconds / 60));
  return {
    to,
    subject: 'Reset your Parley password',
    text: [
      'Someone (hopefully you) asked to reset the password of the Parley account that uses this address.',
      '',
      'To choose a new password, open:',
      link,
      '',
      'or enter this reset code in the app:',
      token,
      '',
      `The code works once, within ${minutes} minute${minutes === 1 ? '' : 's'}. Resetting signs out every device.`,
      'If you did not ask for this, ignore this mail: your password stays as it is.',
      '',
    ].join('\n'),
  };
}
