import { callRpc, InvalidRequestError, type Bus } from '@parley/bus';
import { MAX_RPC_BATCH } from '@parley/contracts';
import type { Logger } from '@parley/log';

/**
 * Each chat's highest seq of a deleted message (a tombstone row: seq, sender, time) created before
 * `cutoff`, as the messages service has them. The scan cannot find these: a deletion removes the
 * message's MessageSent from the stream (the stream-content reactor), so a chat whose old messages
 * were deleted kept their tombstones past the retention period, and one whose only old message
 * was deleted got no MessagesExpired at all. The messages service names only tombstones with no
 * fresh message below them (a seq can be given after a fresh one to an older send: its retry keeps
 * its first time), so the pass expires the chat up to it.
 *
 * A messages service from before this question refuses it as invalid: the pass warns and goes on
 * without (the tombstones stay until that service is upgraded), as it did before.
 */
export async function expiredTombstones(deps: { bus: Bus; namespace: string; log: Logger }, cutoff: Date): Promise<Map<string, number>> {
  const found = new Map<string, number>();
  let afterChatId: string | null = null;
  try {
    for (;;) {
      const { tombstones = [] }: { tombstones?: { chatId: string; seq: number }[] } = await callRpc(deps.bus, deps.namespace, 'messages.retentionPreview', { chats: [], receiptsCutoff: null, tombstones: { cutoff: cutoff.toISOString(), afterChatId } }, 60_000);
      for (const { chatId, seq } of tombstones) found.set(chatId, seq);
      if (tombstones.length < MAX_RPC_BATCH) return found;
      afterChatId = tombstones.at(-1)!.chatId;
    }
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    deps.log.warn({ err: error.message }, 'the messages service does not answer which deleted messages are past the retention period (a version before this pass): their tombstones stay until it is upgraded');
    return found;
  }
}
