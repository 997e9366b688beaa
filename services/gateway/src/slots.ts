/** More waiting than this and a request is turned away (503) instead of queued. */
export class SlotsFull extends Error {}

/**
 * At most `max` jobs at once, the rest waiting in arrival order, at most `maxWaiting` of them.
 * Used for two things. Thumbnails are CPU work on libuv's thread pool: without a bound, a chat of
 * fifty photos opened by many people would decode them all at once, starving the file reads that
 * share that pool and holding every source file in memory together; their wait is bounded too, so
 * a flood of requests costs a quick 503 rather than an ever longer queue of held connections.
 * WebSocket set-ups (memberships and the presence snapshot, ws/connection.ts) are requests to the
 * services: without a bound, a reconnect storm sends them all at once, and past the services'
 * database pools they time out and close sockets that then reconnect (docs/decisions.md).
 */
export class Slots {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly maxWaiting: number,
  ) {}

  /** Runs `job` when a slot is free; rejects with SlotsFull at once if too many already wait. */
  async run<T>(job: () => Promise<T>): Promise<T> {
    if (this.running >= this.max) {
      if (this.waiting.length >= this.maxWaiting) throw new SlotsFull('too many waiting');
      // The slot is handed over by the job that finishes (running is not decremented in between).
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running++;
    }
    try {
      return await job();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.running--;
    }
  }

  get busy(): number {
    return this.running;
  }

  get queued(): number {
    return this.waiting.length;
  }
}
