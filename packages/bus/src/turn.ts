let pending: Promise<void> | undefined;

/**
 * Resolves in the check phase of the current event-loop turn (setImmediate), with one promise
 * shared by every caller in that turn.
 *
 * Why: nats.js writes its outbound buffer to the socket once per microtask checkpoint, and
 * uWebSockets.js (like any I/O callback) ends in a checkpoint of its own, so a publish made
 * straight from a frame handler costs a `write` syscall of its own. Publishes that first wait
 * here all reach nats.js in one checkpoint and leave in one write. A gateway profile at 1,000
 * msg/s spent a third of its CPU in those writes (docs/performance.md). The wait is the rest of
 * the current turn: I/O already read is handled first, nothing waits on a timer.
 */
export function endOfTurn(): Promise<void> {
  pending ??= new Promise((resolve) => {
    setImmediate(() => {
      pending = undefined;
      resolve();
    });
  });
  return pending;
}
