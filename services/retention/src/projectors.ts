import type { JetStreamManager } from '@nats-io/jetstream';
import { RETENTION_PROJECTORS, streamName } from '@parley/contracts';

export class ProjectionTimeoutError extends Error {
  override name = 'ProjectionTimeoutError';
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
      if (info && info.ack_floor.stream_seq >= seq) break;
      if (Date.now() > deadline) {
        throw new ProjectionTimeoutError(`${RETENTION_PROJECTORS[key]} has not applied the retention events (stream seq ${seq}) within ${timeoutMs} ms; is the service running?`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
