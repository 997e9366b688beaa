/**
 * Fault injection for the fault suite (e2e/faults, docs/reliability.md): points in a projector's
 * batch where a test makes the process die or stall. Set only by tests through `PARLEY_FAULT`;
 * unset (production) it is `undefined` and costs nothing.
 */
export interface ProjectorHooks {
  /** A batch was taken from the queue; no transaction yet. */
  received?: (streamSeqs: number[]) => void | Promise<void>;
  /** The batch is applied inside the transaction; COMMIT is next. */
  beforeCommit?: (streamSeqs: number[]) => void | Promise<void>;
  /** Committed; the acks are next. */
  afterCommit?: (streamSeqs: number[]) => void | Promise<void>;
  /**
   * Committed and acked: true skips the projection's own after-commit step (cache deletes, reactor
   * kicks), which a crash right after the acks loses the same way, but the process lives on.
   */
  skipAfterCommit?: (projector: string) => boolean;
}

export type CrashStep = 'received' | 'beforeCommit' | 'afterCommit';
const STEPS: readonly CrashStep[] = ['received', 'beforeCommit', 'afterCommit'];

/**
 * `PARLEY_FAULT` values:
 * - `projector-crash-after-commit`: SIGKILL at the first commit (before its acks).
 * - `projector-crash:<step>:<armAfterMs>`: SIGKILL at the first batch reaching `<step>` once the
 *   process has run `<armAfterMs>` (so it first does some real work under load).
 * - `projector-slow-commit:<ms>`: every batch waits `<ms>` before its COMMIT (a replica slower
 *   than the ack wait).
 * - `projector-skip-after-commit:<projector>`: that projector never runs its projection's
 *   after-commit step (what a crash after the acks loses), so a test can see what the write paths
 *   do without it.
 */
export function faultHooks(spec: string | undefined, kill: () => void = () => process.kill(process.pid, 'SIGKILL')): ProjectorHooks | undefined {
  if (!spec) return undefined;
  if (spec === 'projector-crash-after-commit') return { afterCommit: kill };
  const [name, first, second] = spec.split(':');
  if (name === 'projector-crash' && STEPS.includes(first as CrashStep)) {
    const armedAt = Date.now() + Number(second ?? 0);
    return { [first as CrashStep]: () => (Date.now() >= armedAt ? kill() : undefined) };
  }
  if (name === 'projector-slow-commit' && Number(first) > 0) {
    return { beforeCommit: () => new Promise<void>((resolve) => setTimeout(resolve, Number(first))) };
  }
  if (name === 'projector-skip-after-commit' && first) {
    return { skipAfterCommit: (projector) => projector === first };
  }
  throw new Error(`unknown PARLEY_FAULT ${JSON.stringify(spec)}`);
}
