import type { Pool } from '@parley/pg';
import { findMessage, type MessageRow } from './queries.js';

export interface LookupDeps {
  pool: Pool;
  /** Resolves once everything already stored is projected (Projector.caughtUp). */
  barrier: () => Promise<unknown>;
}

/**
 * A message by id, read-your-writes: a client that just got the ack of a WebSocket send may ask
 * about the message before the projection has it. On a miss, wait for the projection to catch up
 * with the stream once, then look again; a real miss costs one short wait.
 */
export async function lookupMessage(deps: LookupDeps, messageId: string): Promise<MessageRow | null> {
  const found = await findMessage(deps.pool, messageId);
  if (found) return found;
  await deps.barrier();
  return findMessage(deps.pool, messageId);
}
