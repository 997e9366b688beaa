import { NoRespondersError, TimeoutError } from '@nats-io/transport-node';
import type { Logger } from '@parley/log';

/** How long a process keeps waiting, at start, for JetStream to answer: as long as it waits for another service's streams. */
export const JETSTREAM_START_WAIT_MS = 120_000;

export class JetStreamUnavailableError extends Error {
  override name = 'JetStreamUnavailableError';
}

/**
 * Runs a start-up step (checking the JetStream API, creating or awaiting streams) again while
 * JetStream cannot answer yet, instead of failing the process on its first timeout. A NATS cluster
 * that is still forming, or whose JetStream meta leader is being elected, leaves requests
 * unanswered or answers 503; services started beside it (a rolling start, a whole installation
 * booting) wait for it, saying so once. Found by e2e/faults/cluster.test.ts on NATS 2.10: the
 * messages service died on one 5 s timeout of a cluster that had just elected its meta leader.
 * Any other error (a refused permission, a mismatched stream) fails at once, as before.
 */
export async function whileJetStreamStarts<T>(what: string, step: () => Promise<T>, log: Logger, options: { waitMs?: number; retryMs?: number } = {}): Promise<T> {
  const waitMs = options.waitMs ?? JETSTREAM_START_WAIT_MS;
  const deadline = Date.now() + waitMs;
  let logged = false;
  for (;;) {
    try {
      return await step();
    } catch (error) {
      if (!isJetStreamUnavailable(error)) throw error;
      if (Date.now() + (options.retryMs ?? 1_000) > deadline) {
        throw new JetStreamUnavailableError(`JetStream did not answer within ${Math.round(waitMs / 1000)} s while ${what}: ${(error as Error).message}`, { cause: error });
      }
      if (!logged) log.warn({ step: what, err: (error as Error).message }, `JetStream does not answer yet (${what}); waiting for it`);
      logged = true;
      await new Promise((resolve) => setTimeout(resolve, options.retryMs ?? 1_000));
    }
  }
}

/**
 * A request JetStream left unanswered (timeout, no responders) or answered "temporarily
 * unavailable" (HTTP-like code 503, JetStream error 10008: no meta leader yet).
 */
export function isJetStreamUnavailable(error: unknown): boolean {
  if (error instanceof TimeoutError || error instanceof NoRespondersError) return true;
  const e = error as { name?: string; message?: string; code?: number | string; api_error?: { code?: number; err_code?: number }; cause?: unknown };
  if (e?.api_error?.code === 503 || e?.api_error?.err_code === 10008) return true;
  if (/^(TimeoutError|NoRespondersError)$/.test(e?.name ?? '') || /temporarily unavailable/i.test(e?.message ?? '')) return true;
  return e?.cause !== undefined && isJetStreamUnavailable(e.cause);
}
