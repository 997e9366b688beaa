import { ProtocolHandler, TE } from '@nats-io/nats-core/internal';

/**
 * nats.js (3.2.0 to 3.4.0) writes what a connection has queued in a microtask after the first
 * command of a batch (`ProtocolHandler.sendCommand`). Microtasks run after every callback from
 * native code, and uWebSockets.js calls back once per WebSocket message, so a gateway wrote to
 * NATS once per send: a `write` and a wake-up of the server for each. This defers that write to
 * the end of the event-loop turn (setImmediate), as the Outbox does for WebSocket frames: the
 * commands of every callback of one turn leave in one write. A command that fills the buffer past
 * the library's limit is still written at once, and `flush()` (a PING) waits for the write like
 * any other command. Closing writes what is queued first: the library's close does not, and
 * relied on the microtask having run (a publish right before close() would otherwise be lost).
 *
 * Applied only while the installed sendCommand is the one this replaces (checked on its source).
 */
const stockSendCommand = ProtocolHandler.prototype.sendCommand;
const stockClose = ProtocolHandler.prototype.close;

/** The stock method's shape: fill the outbound buffer, then a microtask flush for the first command. */
const STOCK_SHAPE = /this\.outbound\.fill\(buf, \.\.\.payloads\);\s*if \(len === 0\) \{\s*queueMicrotask\(\(\) => \{\s*this\.flushPending\(\);\s*\}\);\s*\}\s*else if \(this\.outbound\.size\(\) >= this\.pendingLimit\) \{/;

/** What the method uses of a connection's protocol handler (flushPending is private in its types). */
interface Handler {
  outbound: ProtocolHandler['outbound'];
  pendingLimit: number;
  flushPending(): void;
}

function sendCommand(this: Handler, cmd: string | Uint8Array, ...payloads: Uint8Array[]): void {
  const len = this.outbound.length();
  this.outbound.fill(typeof cmd === 'string' ? TE.encode(cmd) : cmd, ...payloads);
  if (len === 0) {
    setImmediate(() => this.flushPending());
  } else if (this.outbound.size() >= this.pendingLimit) {
    this.flushPending();
  }
}

function close(this: Handler, err?: Error): Promise<void> {
  this.flushPending();
  return stockClose.call(this as unknown as ProtocolHandler, err);
}

/** Whether a connection's commands leave once per event-loop turn (true once applied). Idempotent. */
export function writeOncePerTurn(): boolean {
  if (ProtocolHandler.prototype.sendCommand === (sendCommand as unknown as ProtocolHandler['sendCommand'])) return true;
  if (!STOCK_SHAPE.test(stockSendCommand.toString())) return false;
  ProtocolHandler.prototype.sendCommand = sendCommand as unknown as ProtocolHandler['sendCommand'];
  ProtocolHandler.prototype.close = close as unknown as ProtocolHandler['close'];
  return true;
}
