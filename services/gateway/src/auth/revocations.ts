import { DeliverPolicy, type ConsumerMessages } from '@nats-io/jetstream';
import type { Bus } from '@parley/bus';
import { parseRevocationEvent, streamName } from '@parley/contracts';
import type { Logger } from '@parley/log';

/**
 * The sessions revoked before their access tokens expired (logout, password change or reset,
 * refresh-token theft). Each gateway reads the revocations stream from its start and keeps every
 * entry for as long as an access token can live, so checking a token costs a Map lookup instead of
 * a database round trip, and a revocation reaches every gateway in milliseconds.
 */
export class RevocationList {
  private readonly revoked = new Map<string, number>();
  private messages: ConsumerMessages | undefined;
  private pruner: NodeJS.Timeout | undefined;

  constructor(
    private readonly deps: {
      bus: Bus;
      namespace: string;
      log: Logger;
      /** Access-token lifetime: an entry older than this protects nothing and is dropped. */
      tokenTtlSeconds: number;
      onRevoked: (sessionId: string) => void;
    },
  ) {}

  /** Applies a revocation this gateway learnt from an API answer, ahead of the stream. */
  add(sessionId: string, revokedAt = Date.now()): void {
    if (!this.revoked.has(sessionId)) {
      this.revoked.set(sessionId, revokedAt + this.deps.tokenTtlSeconds * 1000);
      this.deps.onRevoked(sessionId);
    }
  }

  has(sessionId: string): boolean {
    return this.revoked.has(sessionId);
  }

  get size(): number {
    return this.revoked.size;
  }

  /** Resolves once every revocation stored before the call has been loaded. */
  async start(timeoutMs = 30_000): Promise<void> {
    const stream = streamName(this.deps.namespace, 'revocations');
    const { state } = await this.deps.bus.jsm.streams.info(stream);
    const target = state.last_seq;
    let caughtUp!: () => void;
    const loaded = new Promise<void>((resolve) => (caughtUp = resolve));
    if (state.messages === 0) caughtUp();
    const consumer = await this.deps.bus.js.consumers.get(stream, { deliver_policy: DeliverPolicy.All });
    this.messages = await consumer.consume({
      callback: (msg) => {
        try {
          const parsed = parseRevocationEvent(msg.json());
          if (parsed.ok) {
            const { sessionId } = parsed.event.data;
            this.add(sessionId, Date.parse(parsed.event.meta.occurredAt));
          } else {
            this.deps.log.error({ streamSeq: msg.seq, reason: parsed.reason }, 'invalid revocation event ignored');
          }
        } catch {
          this.deps.log.error({ streamSeq: msg.seq }, 'undecodable revocation event ignored');
        }
        if (msg.seq >= target) caughtUp();
      },
    });
    this.pruner = setInterval(() => this.prune(Date.now()), 60_000);
    this.pruner.unref();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('revocation list did not load in time')), timeoutMs);
    });
    try {
      await Promise.race([loaded, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  prune(now: number): void {
    for (const [sessionId, until] of this.revoked) if (until < now) this.revoked.delete(sessionId);
  }

  async stop(): Promise<void> {
    clearInterval(this.pruner);
    await this.messages?.close().catch(() => {});
  }
}
