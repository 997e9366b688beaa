import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';

/** Every child still running: killed when the test process exits, even if its file failed before cleanup. */
const living = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of living) child.kill('SIGKILL');
});

/**
 * A child process a scenario owns and mistreats: killed (SIGKILL by default, the crash the suite is
 * about), frozen (SIGSTOP) and thawed, started again. Keeps the last lines of its output for a
 * failing scenario's message. Servers and services both build on it.
 */
export abstract class ManagedProcess {
  private child: ChildProcess | undefined;
  private exited: Promise<unknown> | undefined;
  /** The last lines of its output. */
  readonly output: string[] = [];

  constructor(readonly label: string) {}

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Adopts a freshly spawned child (stdout and stderr piped). */
  protected adopt(child: ChildProcess): void {
    this.child = child;
    this.exited = once(child, 'exit');
    living.add(child);
    child.once('exit', () => living.delete(child));
    const keep = (data: Buffer) => {
      for (const line of String(data).split('\n')) if (line) this.output.push(line);
      if (this.output.length > 300) this.output.splice(0, this.output.length - 300);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
  }

  /** Resolves once the process has exited, with `[code, signal]`. */
  waitExit(): Promise<unknown> {
    return this.exited ?? Promise.resolve(undefined);
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    if (!this.running) return;
    // A frozen process handles no signal but SIGKILL until it is thawed.
    this.child!.kill('SIGCONT');
    this.child!.kill(signal);
    await this.exited;
  }

  /** Sends a signal without waiting for an exit (SIGHUP: reload the configuration). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Resident memory in bytes, from /proc (Linux). */
  async rssBytes(): Promise<number> {
    const status = await readFile(`/proc/${this.pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024;
  }
}
