import type { Logger } from '@parley/log';

/**
 * Work a request starts but does not wait for (sending a reset mail). Tracked so that shutdown can
 * wait for it instead of cutting it off; failures are logged, since nobody else will see them.
 */
export class BackgroundTasks {
  private readonly running = new Set<Promise<void>>();

  constructor(private readonly log: Logger) {}

  run(name: string, task: () => Promise<void>): void {
    const promise: Promise<void> = task()
      .catch((error: unknown) => {
        // The message only: an error object's other fields may carry request data.
        this.log.error({ task: name, err: (error as Error)?.message }, 'background task failed');
      })
      .finally(() => this.running.delete(promise));
    this.running.add(promise);
  }

  /** Resolves once every task started so far has finished. */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running]);
  }
}
