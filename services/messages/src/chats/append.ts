import type { Sequencer } from '@parley/bus';
import type { Pool } from '@parley/pg';

/**
 * What the chat routes share: the pool, the namespace, the sequencer the chat writer appends with,
 * and the read-your-writes barrier for lookups (Projector.caughtUp). Chat events themselves are
 * written only through the chat writer (chats/write.ts, @parley/chat-writer).
 */
export interface AppendDeps {
  pool: Pool;
  namespace: string;
  sequencer: Sequencer;
  barrier: () => Promise<unknown>;
}
