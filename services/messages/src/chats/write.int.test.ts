import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@parley/contracts';
import { migrate, type Pool } from '@parley/pg';
import { projectionDatabase } from '@parley/testing';
import type { MessageRow } from '../messages/queries.js';
import { findMessage } from '../messages/queries.js';
import { basisWith } from './write.js';

/** The basis a command on one message is decided on, from the messages projection on real Postgres. */
const MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

let pool: Pool;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'messages', MIGRATIONS)));
});
afterAll(() => cleanup?.());

describe('basisWith', () => {
  it('takes a message as the projection has it when the basis is read, not as the caller read it before', async () => {
    const [chatId, owner, live, deleted, gone] = [newId(), newId(), newId(), newId(), newId()];
    await pool.query(`INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq) VALUES ($1, 'group', 't', $2, now(), 4, now(), 4)`, [chatId, owner]);
    await pool.query(`INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq) VALUES ($1, $2, 'owner', 1)`, [chatId, owner]);
    for (const [id, seq] of [[live, 2], [deleted, 3], [gone, 4]] as const) {
      await pool.query(`INSERT INTO messages.messages (id, chat_id, seq, sender_id, client_msg_id, body, created_at, stream_seq) VALUES ($1, $2, $3, $4, $5, 'hi', now(), $6)`, [id, chatId, seq, owner, `c${seq}`, seq]);
    }
    const before = { live: (await findMessage(pool, live))!, deleted: (await findMessage(pool, deleted))!, gone: (await findMessage(pool, gone))! };
    // After the caller's read: one message deleted, one expired (its row gone).
    await pool.query('UPDATE messages.messages SET deleted_at = now() WHERE id = $1', [deleted]);
    await pool.query('DELETE FROM messages.messages WHERE id = $1', [gone]);
    const deletedOf = async (row: MessageRow) => (await basisWith(pool, chatId, { message: row })).state.messages.get(row.id)?.deleted;
    expect(await deletedOf(before.live)).toBe(false);
    // Before: false for both, and an edit or reaction decided on them was stored.
    expect(await deletedOf(before.deleted)).toBe(true);
    expect(await deletedOf(before.gone)).toBe(true);
  });
});
