/** More waiting than this and a request is turned away (503) instead of queued. */
export class SlotsFull extends Error {}

/**
 * At most `max` jobs at once, the rest waiting in arrival order, at most `maxWaiting` of them.
 * Used for two things. Thumbnails are CPU work on libuv's thread pool: without a bound, a chat of
 * fifty photos opened by many people would decode them all at once, starving the file reads that
 * share that pool and holding every source file in memory together; their wait is bounded too, so
 * a flood of requests costs a quick 503 rather than an ever longer queue of held connections.
 * WebSocket set-ups (memberships and the presence snapshots, in Batches below; ws/setup.ts) and
 * tear-downs are requests to the services: without a bound, a reconnect storm sends them all at
 * once, and past the services' database pools they time out and close sockets that then reconnect
 * (docs/decisions.md).
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

/**
 * Items handled in batches, each batch a job of `slots`: while every slot is busy, items gather,
 * and the next free slot takes up to `maxBatch` of them at once. A lone item goes at once, in a
 * batch of one. Used for WebSocket set-ups (ws/setup.ts): in a reconnect storm the services get one
 * request for many sockets instead of one request per socket (docs/decisions.md).
 */
export class Batches<T> {
  private readonly items: { item: T; done: () => void; failed: (error: unknown) => void }[] = [];
  /** Jobs handed to the slots that have not yet taken their items: at most one. */
  private jobsWaiting = 0;

  constructor(
    private readonly slots: Slots,
    private readonly maxBatch: number,
    private readonly handle: (batch: T[]) => Promise<void>,
  ) {}

  /** Resolves once the batch `item` went in has been handled; rejects with that batch's error. */
  add(item: T): Promise<void> {
    const done = new Promise<void>((resolve, reject) => this.items.push({ item, done: resolve, failed: reject }));
    this.schedule();
    return done;
  }

  /** Items waiting for a batch. */
  get waiting(): number {
    return this.items.length;
  }

  /** Batch jobs queued in the slots, not yet started (their items are counted in `waiting`). */
  get queuedJobs(): number {
    return this.jobsWaiting;
  }

  private schedule(): void {
    if (this.jobsWaiting > 0 || this.items.length === 0) return;
    this.jobsWaiting += 1;
    void this.slots.run(async () => {
      this.jobsWaiting -= 1;
      const batch = this.items.splice(0, this.maxBatch);
      // The rest take the next free slot, while this batch is handled.
      this.schedule();
      try {
        await this.handle(batch.map((b) => b.item));
        for (const b of batch) b.done();
      } catch (error) {
        for (const b of batch) b.failed(error);
      }
    });
  }
}
