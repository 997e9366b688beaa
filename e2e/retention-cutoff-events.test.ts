import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '@parley/testing';
import { DAY_MS, startRetentionStack, type RetentionStack } from './retention-kit.js';
import { http, storedMessages } from './stack.js';

/**
 * The pass published a class's cutoff event (here ReadPositionsExpired) only when the preview
 * counted rows. A projector behind the expired events has no rows for them yet: the pass
 * published nothing, waited for the projector to pass the purge point (which inserts the rows),
 * purged, and the rows outlived the retention period until the next pass. The cutoff event is now
 * published whenever the scan found expired events; it follows them in the stream.
 */
describe('retention: a cutoff event for expired events a lagging projector has not applied yet', () => {
  let rs: RetentionStack;
  /** While set, every batch of the messages service's projectors waits for it. */
  let held: Promise<void> | null = null;
  let release = () => {};

  beforeAll(async () => {
    rs = await startRetentionStack('retention-cutoff', { READ_RECEIPT_RETENTION_DAYS: '30', AUDIT_LOG_RETENTION_DAYS: '30' }, { messages: { projectorHooks: { received: () => held ?? undefined } } });
  });
  afterAll(async () => {
    release();
    await rs?.stop();
  });

  it('deletes the read position the projector inserts after the preview', async () => {
    const { services: stack, ann, bob, nc, env } = rs;
    const count = (sql: string) => rs.count(sql);
    const chatId = (await http(stack, 'POST', '/api/v1/chats', { token: ann.accessToken, body: { type: 'direct', userId: bob.id } })).body.id;
    const sent = (await http(stack, 'POST', `/api/v1/chats/${chatId}/messages`, { token: ann.accessToken, body: { clientMsgId: 'one', body: 'one' } })).body as { id: string };
    await eventually(async () => (await count('SELECT count(*) AS n FROM messages.messages')) === 1 || undefined);
    // The audit entries (registrations) are projected by users, which is not held: the pass's
    // AuditEntriesExpired is the sign that it has passed its preview and published its events.
    await eventually(async () => (await count('SELECT count(*) AS n FROM users.audit_log')) >= 2 || undefined);

    // Hold the messages service's projectors, then read: the event is stored, the row is not.
    held = new Promise<void>((resolve) => (release = resolve));
    expect((await http(stack, 'POST', `/api/v1/chats/${chatId}/read`, { token: bob.accessToken, body: { messageId: sent.id } })).status).toBe(204);
    await eventually(async () => (await storedMessages(nc, `${env.namespace}_receipts`)).some((m) => m.text.includes('"ReadPositionUpdated"')) || undefined);
    await new Promise((r) => setTimeout(r, 50));
    const cutoff = new Date();

    const pass = rs.passAt(new Date(cutoff.getTime() + 30 * DAY_MS));
    await eventually(async () => (await storedMessages(nc, `${env.namespace}_audit`)).some((m) => m.text.includes('"AuditEntriesExpired"')) || undefined, 10_000, 'the pass\'s audit cutoff event');
    expect(await count('SELECT count(*) AS n FROM messages.read_positions')).toBe(0); // still held
    held = null;
    release();
    const { exitCode, report } = await pass;
    expect(exitCode).toBe(0);
    expect(report?.rows.readReceipts).toBe(0); // the preview saw no row
    // The pass waited for the receipts projector to apply its cutoff event, after the position.
    expect(await count('SELECT count(*) AS n FROM messages.read_positions')).toBe(0);
  });
});
