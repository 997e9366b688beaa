import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { newId } from '@parley/contracts';
import { migrate, type Pool } from '@parley/pg';
import { projectionDatabase } from '@parley/testing';
import { socketSetupsOf } from './queries.js';

/**
 * messages.socketSetups against real Postgres: a gateway's batch of set-ups is answered per user,
 * in the order asked, and an answer past its byte budget stops short for the gateway to ask again.
 */
const MIGRATIONS = fileURLToPath(new URL('../../migrations', import.meta.url));

let pool: Pool;
let cleanup: () => Promise<void>;
beforeAll(async () => {
  ({ pool, cleanup } = await projectionDatabase((p) => migrate(p, 'messages', MIGRATIONS)));
});
afterAll(() => cleanup?.());

async function chatOf(members: string[], lastSeq: number): Promise<string> {
  const id = newId();
  await pool.query(
    `INSERT INTO messages.chats (id, type, title, created_by, created_at, last_seq, last_activity_at, stream_seq) VALUES ($1, 'group', 't', $2, now(), $3, now(), 1)`,
    [id, members[0], lastSeq],
  );
  await pool.query(`INSERT INTO messages.chat_members (chat_id, user_id, role, joined_seq) SELECT $1, unnest($2::uuid[]), 'member', 1`, [id, members]);
  return id;
}

describe('socketSetupsOf', () => {
  const [ann, bob, cat, dan, eve] = [newId(), newId(), newId(), newId(), newId()];
  let both: string;
  let annCat: string;
  beforeAll(async () => {
    both = await chatOf([ann, bob], 7);
    annCat = await chatOf([ann, cat, dan], 3);
  });

  it('answers each user in the order asked: their chats with each seq, and their chat peers once each', async () => {
    const [forBob, forAnn, forEve] = await socketSetupsOf(pool, [bob, ann, eve]);
    expect(forBob).toEqual({ chatIds: [both], seqs: [7], peerIds: [ann] });
    const annChats = forAnn!.chatIds.map((chatId, i) => [chatId, forAnn!.seqs[i]]);
    expect(annChats.sort()).toEqual([[both, 7], [annCat, 3]].sort());
    expect([...forAnn!.peerIds].sort()).toEqual([bob, cat, dan].sort());
    // A user in no chat gets an empty answer in their place, not a shorter list.
    expect(forEve).toEqual({ chatIds: [], seqs: [], peerIds: [] });
  });

  it('stops short once the ids pass the budget (the first user always in), and the rest are answered when asked again', async () => {
    // ann's answer has 5 ids (2 chats, 3 peers), about 200 bytes: with 250, bob's 2 more do not fit.
    const first = await socketSetupsOf(pool, [ann, bob, cat], 250);
    expect(first).toHaveLength(1);
    expect(first[0]!.chatIds).toHaveLength(2);
    const rest = await socketSetupsOf(pool, [bob, cat], 250);
    expect(rest.map((a) => a.chatIds)).toEqual([[both], [annCat]]);
    // Even alone past the budget, the first is answered.
    expect(await socketSetupsOf(pool, [ann], 1)).toHaveLength(1);
  });
});
