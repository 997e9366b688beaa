import type { Socket } from './registry.js';

/**
 * Every frame the gateway sends to a client goes through here. Frames wait per socket and leave
 * once per event-loop turn (setImmediate), corked: a socket that gets several frames in one turn
 * (its ack and its own event, a burst in a busy chat, a resume's events) costs one write system
 * call instead of one each (one per 16 KiB: see sendInGroups). Under load more frames share a
 * turn, so the cost per frame falls as the rate rises. Order per socket is the order of `send`
 * calls, whatever the frame.
 *
 * `end` sends what waits for the socket first, so an error frame sent just before a close
 * (a flood's `rate_limited`) still reaches the client.
 */
export class Outbox {
  private readonly waiting = new Set<Socket>();
  private scheduled = false;

  /** `flushAt`: queued frames (UTF-16 units) past which a socket's outbox is written at once (send). */
  constructor(private readonly flushAt = FLUSH_EARLY_UNITS) {}

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
    // A batch sent in one go (a resume's up to 500 events, a gap fill, a catch-up) goes to
    // uWebSockets.js as it grows, not all at the turn's end: held here whole it counted as
    // "buffered" (below) and closed a fast client as a slow reader (4008) though nothing had been
    // offered to the kernel yet. Written now, what stays is what the socket really could not take.
    if (data.outboxBytes >= this.flushAt) {
      this.flush(socket);
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flushAll);
    }
  }

  /**
   * What waits to reach the client: uWebSockets.js's buffer plus the frames queued here
   * (counted in UTF-16 units, which is bytes for the ASCII JSON most frames are; never more than
   * `flushAt`, so this is mostly what the kernel would not take).
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
    const units = data.outboxBytes;
    data.outbox = null;
    data.outboxBytes = 0;
    if (!frames || data.closed) return;
    // A UTF-16 unit is at most 3 bytes of UTF-8, so most turns fit the cork buffer without counting.
    if (units * 3 + frames.length * FRAME_HEADER_BYTES < CORK_BUFFER_BYTES) sendTogether(socket, frames);
    else sendInGroups(socket, frames);
  }
}

/** One frame as it is; several corked, so that they leave in one write. */
function sendTogether(socket: Socket, frames: string[]): void {
  if (frames.length === 1) socket.send(frames[0]!, false);
  else
    socket.cork(() => {
      for (const frame of frames) socket.send(frame, false);
    });
}

/**
 * Sends a turn's frames corked in groups that fit uWebSockets.js's cork buffer. A frame that does
 * not fit in what is left of it goes through the socket's own buffer instead, and uWebSockets.js
 * 20.30 empties that buffer without freeing it: every socket that once got more than 16 KiB in one
 * turn kept that much for the rest of its life (3.7 KiB per idle socket on average in the bench,
 * from the frames of their set-up: docs/performance.md). A frame too big for the cork buffer on its
 * own is sent alone and uncorked, which uWebSockets.js writes straight to the kernel.
 */
function sendInGroups(socket: Socket, frames: string[]): void {
  let group: string[] = [];
  let groupBytes = 0;
  for (const frame of frames) {
    const bytes = Buffer.byteLength(frame) + FRAME_HEADER_BYTES;
    if (group.length > 0 && groupBytes + bytes >= CORK_BUFFER_BYTES) {
      sendTogether(socket, group);
      group = [];
      groupBytes = 0;
    }
    group.push(frame);
    groupBytes += bytes;
  }
  sendTogether(socket, group);
}

/**
 * Queued frames (UTF-16 units) past which a socket's outbox is written at once instead of at the
 * turn's end, by default: a few cork buffers' worth, so that a burst still leaves in few writes.
 * ChatDelivery lowers it to a quarter of WS_MAX_BUFFERED_BYTES when that is small, so a turn's
 * queue alone never looks like a slow reader.
 */
export const FLUSH_EARLY_UNITS = 64 * 1024;
/** uWebSockets.js's cork buffer (LoopData::CORK_BUFFER_SIZE), shared by every socket of the loop. */
const CORK_BUFFER_BYTES = 16 * 1024;
/** The most a server frame's header takes (2 bytes, plus 8 for a 64-bit length). */
const FRAME_HEADER_BYTES = 10;
