import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@parley/contracts';
import { migrate, type Pool } from '@parley/pg';
import { projectionDatabase } from '@parley/testing';
import { presenceVisibleMany } from './queries.js';

/**
 * users.presenceVisibleMany against real Postgres: several viewers in one query, each answered by
 * the presence rules from their own side, and an answer past its byte budget stopping short.
 */
const MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

let pool: Pool;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'users', MIGRATIONS)));
});
afterAll(() => cleanup?.());

async function user(presence: 'everyone' | 'contacts' | 'nobody'): Promise<string> {
  const id = newId();
  await pool.query(
    `INSERT INTO users.users (id, username, username_lower, email, email_lower, display_name, password_hash, created_at, stream_seq, privacy_presence)
     VALUES ($1, $2, $2, $3, $3, 'x', 'x', now(), 1, $4)`,
    [id, `u${id.slice(-12)}`, `${id}@example.test`, presence],
  );
  return id;
}
const contact = (userId: string, contactId: string) =>
  pool.query('INSERT INTO users.contacts (user_id, contact_id, added_at, stream_seq) VALUES ($1, $2, now(), 1)', [userId, contactId]);
const block = (userId: string, blockedId: string) =>
  pool.query('INSERT INTO users.blocks (user_id, blocked_id, blocked_at, stream_seq) VALUES ($1, $2, now(), 1)', [userId, blockedId]);

describe('presenceVisibleMany', () => {
  it('answers each viewer by their own contacts, chat peers and blocks, in the order asked', async () => {
    const [ann, bob] = [await user('everyone'), await user('everyone')];
    const [open, hidden, mutual, oneSided, blocker] = [await user('everyone'), await user('nobody'), await user('contacts'), await user('contacts'), await user('everyone')];
    await contact(ann, open); // a contact of ann's who lets everyone see: visible to ann only
    await contact(bob, mutual);
    await contact(mutual, bob); // mutual contacts: visible to bob
    await contact(ann, oneSided); // oneSided has not added ann: hidden from her
    await block(blocker, bob); // blocker is bob's chat peer, but blocked him
    const [forAnn, forBob] = await presenceVisibleMany(pool, [
      { viewerId: ann, chatPeerIds: [hidden, bob] },
      { viewerId: bob, chatPeerIds: [blocker, ann, oneSided] },
    ]);
    expect([...forAnn!].sort()).toEqual([open, bob].sort());
    expect([...forBob!].sort()).toEqual([mutual, ann, oneSided].sort());
  });

  it('stops short once the ids pass the budget (the first viewer always in)', async () => {
    const [a, b, c, d] = [await user('everyone'), await user('everyone'), await user('everyone'), await user('everyone')];
    const viewers = [
      { viewerId: a, chatPeerIds: [b, c, d] },
      { viewerId: b, chatPeerIds: [a] },
    ];
    expect(await presenceVisibleMany(pool, viewers)).toHaveLength(2);
    // a's answer is 3 ids, about 120 bytes: with 130, b's one more does not fit.
    const cut = await presenceVisibleMany(pool, viewers, 130);
    expect(cut).toHaveLength(1);
    expect([...cut[0]!].sort()).toEqual([b, c, d].sort());
  });
});
