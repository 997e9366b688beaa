import type { Msg } from '@nats-io/transport-node';
import { RequestOne } from '@nats-io/nats-core/internal';

/**
 * nats.js (3.2.0 to 3.4.0, the newest) ends every answered request, `RequestOne.resolver`, with
 * `this.cancel()`, which removes the request from the connection's table and rejects its promise
 * with a fresh `RequestError('cancelled')`. That promise is already settled, so the rejection does
 * nothing, but building the Error captures a stack every time: every JetStream publish (each
 * WebSocket send), every RPC and every direct get. On this machine it halves a request's client
 * CPU (docs/decisions.md, "nats.js requests without a throw-away Error"; docs/performance.md).
 *
 * This replaces the resolver's ending with the table removal alone, leaving everything else the
 * library does. It is applied only when the installed resolver still has the ending it replaces
 * (checked on its source), so an upgrade that changes it keeps the library's own code.
 */
const stockResolver = RequestOne.prototype.resolver;

/** The stock resolver's last statements: settle the promise, then cancel. */
const STOCK_ENDING = /this\.deferred\.resolve\(msg\);\s*\}\s*this\.cancel\(\);\s*\}$/;

function resolver(this: RequestOne, err: Error | null, msg: Msg): void {
  if (err) {
    // Failures (timeouts, no responders, a lost connection) are rare: the library's own path.
    stockResolver.call(this, err, msg);
    return;
  }
  this.timer?.cancel();
  this.deferred.resolve(msg);
  this.mux.cancel(this);
}

/** Whether answered requests skip the throw-away Error (true once applied). Idempotent. */
export function answerRequestsWithoutThrowAwayErrors(): boolean {
  if (RequestOne.prototype.resolver === resolver) return true;
  if (!STOCK_ENDING.test(stockResolver.toString().trim())) return false;
  RequestOne.prototype.resolver = resolver;
  return true;
}
