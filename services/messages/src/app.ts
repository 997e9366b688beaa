import { fileURLToPath } from 'node:url';
import { ChatWriter, chatSequencer } from '@parley/chat-writer';
import { RequestVerifier, serveRequests, type Sequencer, serveRpc, type ProjectorHooks } from '@parley/bus';
import { Projector, waitForCheckpoint } from '@parley/projector-pg';
import { ATTACHMENTS_PROJECTOR, attachmentsProjection } from './attachments/projection.js';
import { AttachmentSweeper } from './attachments/sweeper.js';
import type { QueueReactor } from './reactors/queue.js';
import { streamContentReactor } from './reactors/stream-content.js';
import { attachmentReleaseReactor, fileDeletionReactor } from './reactors/attachments.js';
import { inboxNoticeReactor } from './reactors/inbox.js';
import { seqRepairReactor } from './reactors/seq-repair.js';
import {
  parseAttachmentEvent,
  parseChatEvent,
  parseReceiptEvent,
  parseUserEvent,
  streamName,
  subjects,
  type AttachmentEvent,
  type ChatEvent,
  type ReceiptEvent,
  type UserEvent,
} from '@parley/contracts';
import { erasureProcess } from './erasure.js';
import { LocalDiskStore, type AttachmentStore } from '@parley/storage';
import { ApiRouter } from '@parley/http';
import { isTransientPgError } from '@parley/pg';
import { projectorBase, type Deps, type Started } from '@parley/runtime-pg';
import { CHECKPOINT_TABLE, chatsProjection } from './chats/projection.js';
import { chatRoutes } from './chats/routes.js';
import type { MessagesConfig } from './env.js';
import { messageRoutes } from './messages/routes.js';
import { pollRoutes } from './polls/routes.js';
import { reactionRoutes } from './reactions/routes.js';
import { receiptsProjection } from './receipts/projection.js';
import { messagesRpc } from './rpc.js';
import { searchRoutes } from './search/routes.js';
import { attachmentRoutes } from './attachments/routes.js';

export const SCHEMA = 'messages';
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export interface MessagesApp {
  router: ApiRouter;
  /** The chats projection (chats, members, messages, reactions, polls). */
  projector: Projector<ChatEvent>;
  /** Read positions, from the receipts stream. */
  receipts: Projector<ReceiptEvent>;
  /** Uploaded files' metadata. */
  attachments: Projector<AttachmentEvent>;
  /** Turns account erasures (users stream) into chat events and stream purges. */
  erasure: Projector<UserEvent>;
  /** Deletes uploads no message used within the grace period. */
  sweeper: AttachmentSweeper;
  /**
   * Side effects the projections queue in their transactions (reactors/): deleted content out of
   * the chats stream, released attachments into AttachmentDeleted events, deleted files, notices
   * to new members' gateways, messages that lost their chat seq appended again.
   */
  reactors: { streamContent: QueueReactor; attachmentRelease: QueueReactor; fileDeletion: QueueReactor; inboxNotice: QueueReactor; seqRepair: QueueReactor };
  /** Read-your-writes barrier: resolves once the chats projection has caught up with the stream. */
  barrier: () => Promise<unknown>;
  attachmentsBarrier: (streamSeq: number) => Promise<boolean>;
  store: AttachmentStore;
  sequencer: Sequencer;
  /** The one writer of chat events (issue 17). */
  writer: ChatWriter;
  /** Checks the gateway's signature on requests made for users (GATEWAY_PUBLIC_KEY). */
  verifier: RequestVerifier;
}

export interface AppOptions {
  projectorHooks?: ProjectorHooks | undefined;
  /** Reactors not to start (tests: a queue row must outlive a restart before its reactor runs). */
  idleReactors?: (keyof MessagesApp['reactors'])[] | undefined;
}

/** Builds the messages service from ready clients; reads no env, listens on nothing. */
export function buildApp(deps: Deps, config: MessagesConfig, options: AppOptions = {}): MessagesApp {
  const stream = streamName(deps.namespace, 'chats');
  const store = new LocalDiskStore(config.ATTACHMENTS_DIR);
  const sequencer = chatSequencer(deps.bus, deps.namespace, deps.metrics);
  const router = new ApiRouter(deps.log, isTransientPgError);
  // The one writer of chat events: every decision about a chat goes through it (issue 17).
  const writer = new ChatWriter({ bus: deps.bus, namespace: deps.namespace, sequencer });
  const reactors = {
    streamContent: streamContentReactor(deps),
    attachmentRelease: attachmentReleaseReactor(deps),
    fileDeletion: fileDeletionReactor({ ...deps, store }),
    inboxNotice: inboxNoticeReactor(deps),
    seqRepair: seqRepairReactor({ ...deps, writer }),
  };
  const common = projectorBase(deps, { checkpointTable: CHECKPOINT_TABLE, ackWaitMs: config.PROJECTOR_ACK_WAIT_MS, lingerMs: config.PROJECTOR_LINGER_MS, synchronousCommit: config.PROJECTOR_SYNCHRONOUS_COMMIT === 'on', hooks: options.projectorHooks });
  const projector = new Projector<ChatEvent>({
    ...common,
    stream,
    filterSubject: subjects.allChats(deps.namespace),
    parse: parseChatEvent,
    projection: chatsProjection({
      ...deps,
      onQueued: (queues) => {
        for (const queue of queues) reactors[queue].kick();
      },
    }),
  });
  const attachments = new Projector<AttachmentEvent>({
    ...common,
    stream,
    filterSubject: subjects.allAttachments(deps.namespace),
    parse: parseAttachmentEvent,
    projection: attachmentsProjection({
      onQueued: () => {
        reactors.fileDeletion.kick();
        reactors.streamContent.kick();
      },
    }),
  });
  const receipts = new Projector<ReceiptEvent>({
    ...common,
    stream: streamName(deps.namespace, 'receipts'),
    filterSubject: subjects.allReceipts(deps.namespace),
    parse: parseReceiptEvent,
    projection: receiptsProjection(deps),
  });
  const barrier = () => projector.caughtUp();
  const appendDeps = { pool: deps.pool, namespace: deps.namespace, sequencer, barrier, cache: deps.cache };
  chatRoutes(router, { ...deps, writer, barrier, chatsTtlSeconds: config.REDIS_CHATS_TTL, groupsPerDay: config.GROUPS_PER_DAY });
  messageRoutes(router, { ...appendDeps, writer, bus: deps.bus, maxChars: config.MESSAGE_MAX_CHARS });
  reactionRoutes(router, { ...appendDeps, writer });
  pollRoutes(router, { ...appendDeps, writer });
  searchRoutes(router, deps);
  const attachmentsBarrier = (streamSeq: number) => waitForCheckpoint(deps.pool, CHECKPOINT_TABLE, ATTACHMENTS_PROJECTOR, streamSeq);
  attachmentRoutes(router, { ...deps, barrier, attachmentsBarrier });

  const erasure = new Projector<UserEvent>({
    ...common,
    stream: streamName(deps.namespace, 'users'),
    filterSubject: subjects.allUsers(deps.namespace),
    parse: parseUserEvent,
    projection: erasureProcess({ ...deps, writer, chatsCaughtUp: () => projector.caughtUp(10_000) }),
  });
  const sweeper = new AttachmentSweeper(deps, config.ATTACHMENT_GRACE_SECONDS, config.ATTACHMENT_SWEEP_INTERVAL_SECONDS);
  return {
    router,
    sweeper,
    reactors,
    erasure,
    projector,
    receipts,
    attachments,
    barrier,
    attachmentsBarrier,
    store,
    sequencer,
    writer,
    verifier: new RequestVerifier(config.GATEWAY_PUBLIC_KEY),
  };
}

/** Wires the app onto NATS: API requests, internal RPC, the projector. */
export function startApp(deps: Deps, app: MessagesApp, options: AppOptions = {}): Started {
  const { nc } = deps.bus;
  const rpc = messagesRpc(deps.pool, { ...deps, store: app.store, writer: app.writer, barrier: app.barrier, attachmentsBarrier: app.attachmentsBarrier, verifier: app.verifier });
  const ns = deps.namespace;
  const subs = [
    serveRequests(nc, subjects.api(ns, 'messages'), 'messages', (req, context) => app.router.handle(req as never, context), deps.log, deps.metrics, app.verifier, subjects.parts(ns, 'messages')),
    ...serveRpc(nc, ns, 'messages', rpc, deps.log, deps.metrics, app.verifier),
  ];
  app.projector.start();
  app.receipts.start();
  app.attachments.start();
  app.erasure.start();
  app.sweeper.start();
  const idle = new Set<string>(options.idleReactors ?? []);
  // An idle reactor is stopped before it starts: the projections' kicks after a commit do nothing either.
  for (const [name, reactor] of Object.entries(app.reactors)) void (idle.has(name) ? reactor.stop() : reactor.start());
  return {
    async stop() {
      await Promise.all(subs.map((s) => s.drain()));
      await app.sweeper.stop();
      for (const reactor of Object.values(app.reactors)) await reactor.stop();
      await Promise.all([app.projector.stop(), app.receipts.stop(), app.attachments.stop(), app.erasure.stop()]);
    },
  };
}
