import type { Socket } from './registry.js';

/**
 * Every frame the gateway sends to a client goes through here. Frames wait per socket and leave
 * once per event-loop turn (setImmediate), corked: a socket that gets several frames in one turn
 * (its ack and its own event, a burst in a busy chat, a resume's events) costs one write system
 * call instead of one each. Under load more frames share a turn, so the cost per frame falls as
 * the rate rises. Order per socket is the order of `send` calls, whatever the frame.
 *
 * `end` sends what waits for the socket first, so an error frame sent just before a close
 * (a flood's `rate_limited`) still reaches the client.
 */
export class Outbox {
  private readonly waiting = new Set<Socket>();
  private scheduled = false;

  send(socket: Socket, frame: string): void {
    const data = socket.getUserData().state;
    if (data.closed) return;
    if (data.outbox === null) {
      data.outbox = [frame];
      this.waiting.add(socket);
    } else {
      data.outbox.push(frame);
    }
    data.outboxBytes += frame.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /**
   * What waits to reach the client: uWebSockets.js's buffer plus the frames queued here
   * (counted in UTF-16 units, which is bytes for the ASCII JSON most frames are).
   */
  buffered(socket: Socket): number {
    return socket.getBufferedAmount() + socket.getUserData().state.outboxBytes;
  }

  /** Sends what waits for the socket, then closes it with `code`. */
  end(socket: Socket, code: number, reason: string): void {
    if (socket.getUserData().state.closed) return;
    this.flush(socket);
    socket.end(code, reason);
  }

  private readonly flushAll = (): void => {
    this.scheduled = false;
    for (const socket of this.waiting) this.flush(socket);
  };

  private flush(socket: Socket): void {
    this.waiting.delete(socket);
    const data = socket.getUserData().state;
    const frames = data.outbox;
    data.outbox = null;
    data.outboxBytes = 0;
    if (!frames || data.closed) return;
    if (frames.length === 1) socket.send(frames[0]!, false);
    else
      socket.cork(() => {
        for (const frame of frames) socket.send(frame, false);
      });
  }
}
