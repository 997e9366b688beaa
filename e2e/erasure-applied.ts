import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import type pg from 'pg';
import { eventually } from '@parley/testing';

/**
 * Waits until the messages service's erasure process has applied the account's `UserErased` (its
 * checkpoint has passed that event): the positive signal after which an erasure's effects on the
 * chats (MemberErased, its events deleted from the stream) are all there to check.
 */
export async function erasureApplied(nc: NatsConnection, db: pg.Client, namespace: string, userId: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  const erasedSeq = await eventually(async () => {
    const last = await jsm.streams.getMessage(`${namespace}_users`, { last_by_subj: `${namespace}.user.${userId}` }).catch(() => null);
    return last && last.json<{ type: string }>().type === 'UserErased' ? last.seq : undefined;
  });
  await eventually(
    async () => ((await db.query(`SELECT 1 FROM messages.projection_checkpoints WHERE projector = 'erasure-process' AND stream_seq >= $1`, [erasedSeq])).rowCount === 1 ? true : undefined),
    20_000,
    'the erasure applied',
  );
}
