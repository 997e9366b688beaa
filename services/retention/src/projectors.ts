import type { ConsumerInfo, JetStreamManager } from '@nats-io/jetstream';
import { ATTACHMENTS_PROJECTOR, RETENTION_PROJECTORS, streamName } from '@parley/contracts';
import { callRpc, type Bus } from '@parley/bus';
import type { Logger } from '@parley/log';

export class ProjectionTimeoutError extends Error {
  override name = 'ProjectionTimeoutError';
}

/**
 * Whether a projector's consumer has acknowledged everything up to stream sequence `seq`. The ack
 * floor says so, except on a consumer the projector created again from its checkpoint (after a
 * stall or a lost consumer): there NATS 2.9.10 left the ack floor at 0 after the event was delivered and
 * acknowledged (bench:retention: delivered 101, ack floor 0, nothing pending, for twelve minutes,
 * while the pass waited for 101). So also: delivered past `seq` with nothing unacknowledged,
 * which an explicit-ack consumer reaches only once every delivery up to there is acked, or when it
 * was created past `seq`, from a checkpoint that already includes it.
 */
function applied(info: ConsumerInfo, seq: number): boolean {
  return info.ack_floor.stream_seq >= seq || (info.delivered.stream_seq >= seq && info.num_ack_pending === 0);
}

/**
 * Resolves once each projector has acknowledged the stream sequence given for it (its deletion
 * event): then the rows are gone from Postgres and Redis. Throws after `timeoutMs`; the events stay
 * in the streams, so the rows still go as soon as the projector runs again.
 */
export async function waitForProjectors(
  jsm: JetStreamManager,
  namespace: string,
  upTo: Partial<Record<keyof typeof RETENTION_PROJECTORS, number>>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const [key, seq] of Object.entries(upTo) as [keyof typeof RETENTION_PROJECTORS, number][]) {
    for (;;) {
      const info = await jsm.consumers.info(streamName(namespace, key), RETENTION_PROJECTORS[key]).catch(() => null);
      if (info && applied(info, seq)) break;
      if (Date.now() > deadline) {
        throw new ProjectionTimeoutError(`${RETENTION_PROJECTORS[key]} has not applied the retention events (stream seq ${seq}) within ${timeoutMs} ms; is the service running?`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Resolves once the messages service's reactors have done what the deletions started: the stream
 * events that referred to expired messages deleted, their attachments released, and the files
 * deleted. Read as backlog, then the attachments projector's pending deliveries, then backlog
 * again: a release leaves its queue only after its AttachmentDeleted is stored, and that event
 * queues the file when it is projected, so three zeros in that order mean nothing is in between.
 */
export async function waitForReactors(bus: Bus, namespace: string, timeoutMs: number, log?: Logger): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let nextReport = Date.now() + 10_000;
  const backlog = async () => (await callRpc(bus, namespace, 'messages.retentionBacklog', {}, 30_000)).pending;
  for (;;) {
    const queued = await backlog();
    if (queued === 0) {
      const info = await bus.jsm.consumers.info(streamName(namespace, 'chats'), ATTACHMENTS_PROJECTOR).catch(() => null);
      if (info && info.num_pending === 0 && info.num_ack_pending === 0 && (await backlog()) === 0) return;
    }
    if (Date.now() > nextReport) {
      // A wait that goes on says what it waits for (a reactor failing again and again logs why in the messages service).
      log?.info({ queued }, 'waiting for the messages service to finish the deletions');
      nextReport = Date.now() + 10_000;
    }
    if (Date.now() > deadline) throw new ProjectionTimeoutError(`the messages service's reactors have not finished the retention deletions within ${timeoutMs} ms; is it running?`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
