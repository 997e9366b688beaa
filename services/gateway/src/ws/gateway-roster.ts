/**
 * The other gateways one gateway knows, for presence (presence.ts): whose users' keys count when
 * it asks whether a user is connected elsewhere, and whose heartbeats it reads. Gateways are noted
 * when seen (their `gw.` key at start, in a beat or a listing of the presence bucket, or their
 * hello); one not seen for `forgetAfterMs` (reaped or stopped: its key is gone) is forgotten.
 * Gateways of an older release, which write no `gw.` key, are known only from the last listing.
 */
export class GatewayRoster {
  /** Beating gateways by id, with when (this process's clock) each was last seen. */
  private readonly lastSeen = new Map<string, number>();
  private older = new Set<string>();

  constructor(
    private readonly selfId: string,
    private readonly forgetAfterMs: number,
  ) {}

  /** Gateways seen now (this one is left out). */
  note(gatewayIds: Iterable<string>): void {
    const now = Date.now();
    for (const id of gatewayIds) if (id !== this.selfId) this.lastSeen.set(id, now);
  }

  /** Forgets the beating gateways not noted for forgetAfterMs. */
  forgetUnseen(): void {
    const before = Date.now() - this.forgetAfterMs;
    for (const [id, at] of this.lastSeen) if (at < before) this.lastSeen.delete(id);
  }

  /** The gateways of an older release a listing found (it replaces the last listing's). */
  setOlder(gatewayIds: Iterable<string>): void {
    this.older = new Set(gatewayIds);
  }

  /** The other gateways that beat: whose `gw.` keys a beat reads. */
  beating(): string[] {
    return [...this.lastSeen.keys()];
  }

  /** Every other gateway whose users' keys count. */
  all(): string[] {
    const ids = new Set([...this.lastSeen.keys(), ...this.older]);
    ids.delete(this.selfId);
    return [...ids];
  }
}
