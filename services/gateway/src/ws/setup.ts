import { callRpc, type Bus } from '@parley/bus';
import type { Logger } from '@parley/log';
import type { ChatDelivery } from './delivery.js';
import { askInParts } from './in-parts.js';
import type { LiveFanout } from './fanout.js';
import type { Presence } from './presence.js';
import type { Socket } from './registry.js';

/** What a socket of a user needs from the messages service before its first frame is answered. */
export interface SetupAnswer {
  chatIds: string[];
  seqs: number[];
  peerIds: string[];
}

export interface SetupDeps {
  bus: Bus;
  namespace: string;
  serviceTimeoutMs: number;
  delivery: ChatDelivery;
  basis: Pick<LiveFanout, 'noteSnapshot' | 'removedSince' | 'joinAfter'>;
  presence: Presence;
  log: Logger;
}

/**
 * Sets up a batch of authenticated sockets (slots.ts Batches; docs/decisions.md, "Socket set-ups
 * in batches"): one `messages.socketSetups` request for all their users (a user with several
 * sockets in the batch is asked for once), each socket joins its chats, its user is announced
 * online, then the presence snapshots, one `users.presenceVisibleMany` for the batch. Sockets that
 * closed while they waited are skipped. Rejects, failing the whole batch, only if the memberships
 * cannot be read: without them a socket would miss its chats' events.
 */
export async function setUpSockets(deps: SetupDeps, batch: { socket: Socket; userId: string }[]): Promise<void> {
  const open = batch.filter((b) => !b.socket.getUserData().state.closed);
  if (open.length === 0) return;
  const answers = await setupAnswers(deps, [...new Set(open.map((b) => b.userId))]);
  /** Joins through the stream, awaited before the set-up ends: a resume must find the socket in the chat. */
  const joining: Promise<void>[] = [];
  for (const { socket, userId } of open) {
    const answer = answers.get(userId)!;
    answer.chatIds.forEach((chatId, i) => {
      const seq = answer.seqs[i] ?? 0;
      // The answer is the projection's, which can trail a removal: a socket is not joined to a
      // chat this gateway saw its user removed from since (e2e/write-model.test.ts). Where what
      // was applied here does not reach back to the answer (a chat not followed here yet, say),
      // the socket joins through the chat's events since it, read from the stream.
      const removed = deps.basis.removedSince(chatId, userId, seq);
      if (removed) return;
      if (removed === undefined) joining.push(deps.basis.joinAfter(chatId, [socket], seq, { catchUp: false }));
      else deps.delivery.join(socket, chatId);
      deps.basis.noteSnapshot(chatId, seq);
    });
  }
  await Promise.all(joining);
  // Announced to the chats the socket is in, so once it has joined them.
  for (const { socket, userId } of open) {
    deps.presence.connected(socket, userId).catch((error: unknown) => {
      deps.log.warn({ err: (error as Error).message }, 'presence update failed');
    });
  }
  // Before each socket's first frame is answered, so a client has who is online before `resumed`
  // or `pong`, and a live notice never arrives before the snapshot it would contradict.
  await deps.presence.snapshots(open.map(({ socket, userId }) => ({ socket, userId, peerIds: answers.get(userId)!.peerIds }))).catch((error: unknown) => {
    deps.log.warn({ err: (error as Error).message }, 'presence snapshot unavailable');
  });
}

/**
 * Users per `messages.socketSetups` request: with a typical user's few chats and hundred peers an
 * answer stays under SETUP_ANSWER_BYTES, so the service seldom computes a user it then leaves out.
 */
const USERS_PER_REQUEST = 12;

/** Each user's answer, a request at a time (so a batch holds one answer's buffers at once). */
async function setupAnswers(deps: SetupDeps, userIds: string[]): Promise<Map<string, SetupAnswer>> {
  const answers = await askInParts(
    userIds,
    () => USERS_PER_REQUEST,
    async (asked) => (await callRpc(deps.bus, deps.namespace, 'messages.socketSetups', { userIds: asked }, deps.serviceTimeoutMs)).users,
    'messages.socketSetups',
  );
  return new Map(userIds.map((userId, i) => [userId, answers[i]!]));
}
