import type { Appended, Sequencer } from '@parley/bus';
import { waitForCheckpoint } from '@parley/projector-pg';
import { buildMeta, newId, subjects, type ChatEvent, type EventMeta } from '@parley/contracts';
import { Unavailable } from '@parley/http';
import type { Pool } from '@parley/pg';
import { CHATS_PROJECTOR, CHECKPOINT_TABLE } from './projection.js';

export interface AppendDeps {
  pool: Pool;
  namespace: string;
  sequencer: Sequencer;
  /** Read-your-writes barrier for lookups (Projector.caughtUp). */
  barrier: () => Promise<unknown>;
}

type Body<E extends ChatEvent> = Omit<E, 'seq' | 'meta' | 'chatId' | 'version'> & { version?: 1 };

/**
 * Appends one event to a chat with the chat's next seq and, when `waitForProjection` is set, waits
 * until the projection has applied it, so the handler can answer from Postgres (read-your-writes).
 */
export async function appendChatEvent<E extends ChatEvent>(
  deps: AppendDeps,
  chatId: string,
  msgId: string,
  actorId: string,
  correlationId: string,
  body: Body<E>,
  options: { waitForProjection?: boolean } = {},
): Promise<Appended<E>> {
  const meta: EventMeta = buildMeta({ eventId: newId(), occurredAt: new Date(), actorId, correlationId });
  const appended = await deps.sequencer.append<E>(subjects.chat(deps.namespace, chatId), msgId, (seq) => ({ ...body, version: 1, chatId, seq, meta }) as unknown as E);
  if (options.waitForProjection && !(await waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, CHATS_PROJECTOR, appended.streamSeq))) {
    throw new Unavailable('The change is stored but not yet visible; reload shortly');
  }
  return appended;
}
