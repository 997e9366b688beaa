import type { ChatEvent } from './types.js';

export type Verdict = 'apply' | 'duplicate' | 'gap';

/**
 * The last chat `seq` seen per chat: the resume cursors, and the dedupe of events by chatId+seq.
 * `read.updated` carries a read position, not a chat seq (protocol.md), so it never moves a cursor
 * and is never a duplicate.
 */
export class ChatCursors {
  private readonly seen = new Map<string, number>();

  /** Decides what to do with an event, and advances the cursor when it is new. */
  accept(event: Pick<ChatEvent, 'type' | 'chatId' | 'seq'>): Verdict {
    if (event.type === 'read.updated') return 'apply';
    const last = this.seen.get(event.chatId);
    if (last !== undefined && event.seq <= last) return 'duplicate';
    this.seen.set(event.chatId, event.seq);
    // The first event of a chat this client never had a cursor for cannot be judged a gap.
    return last !== undefined && event.seq > last + 1 ? 'gap' : 'apply';
  }

  /** Sets a cursor known from elsewhere (a chat.created answer, a stored state); never moves back. */
  advance(chatId: string, seq: number): void {
    if (seq > (this.seen.get(chatId) ?? -1)) this.seen.set(chatId, seq);
  }

  get(chatId: string): number | undefined {
    return this.seen.get(chatId);
  }

  forget(chatId: string): void {
    this.seen.delete(chatId);
  }

  /** The `cursors` of a resume frame. */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.seen);
  }
}
