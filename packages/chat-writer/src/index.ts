import { DuplicateGoneError, eventsBetween, findChatEventAfter, floorOf, Sequencer, type Appended, type Bus } from '@parley/bus';
import type { Metrics } from '@parley/telemetry';
import { decideAppend, decideRepair, initialChatState, storedCopy, type ChatCommand, type ChatState, type LostMessage, type NotAppended, type NotRepaired } from '@parley/chat-domain';
import { buildMeta, newId, streamName, subjects, type ChatEvent } from '@parley/contracts';

/**
 * The Sequencer of the chats stream, as every writer of chat events needs it: a chat whose events
 * retention purged entirely continues after its snapshot's seq (issue 18), not at 1.
 */
export function chatSequencer(bus: Bus, namespace: string, metrics?: Metrics): Sequencer {
  const stream = streamName(namespace, 'chats');
  return new Sequencer(bus.js, bus.jsm, stream, metrics, { floor: (subject) => floorOf(bus, stream, subject) });
}

/** The state a writer decided on, and the chat seq it reflects. */
export interface Basis {
  state: ChatState;
  seq: number;
}

/**
 * The one way chat events are written (issue 17): decide the command against the writer's state
 * plus every event stored after it, append with the chat's expected head, and on a conflict fold
 * the new events and decide again (Sequencer.appendDecided). Used by the gateway's WebSocket send
 * and the messages service's HTTP send.
 */
export class ChatWriter {
  private readonly stream: string;

  constructor(
    private readonly deps: { bus: Bus; namespace: string; sequencer: Sequencer },
  ) {
    this.stream = streamName(deps.namespace, 'chats');
  }

  async execute(
    chatId: string,
    command: ChatCommand,
    basis: Basis,
    options: { msgId: string; actorId: string | null; correlationId?: string; occurredAt?: Date },
  ): Promise<Appended<ChatEvent> | { refusal: NotAppended }> {
    const subject = subjects.chat(this.deps.namespace, chatId);
    // One meta for every attempt: a retry is the same event, deduplicated by msgId.
    const meta = buildMeta({ eventId: newId(), occurredAt: options.occurredAt ?? new Date(), actorId: options.actorId, correlationId: options.correlationId ?? newId() });
    try {
      return await this.deps.sequencer.appendDecided(
        subject,
        options.msgId,
        basis.seq,
        (newer, seq) => decideAppend(chatId, command, basis.state, newer, seq, meta),
        (after, upto, afterStreamSeq) => eventsBetween(this.deps.bus, this.stream, subject, after, upto, afterStreamSeq),
      );
    } catch (error) {
      // A resend whose first copy the seq repair appended again and deleted: answer with the
      // repaired copy. Failing here made the client resend until JetStream's duplicate window
      // passed, and then store it as a new message that history refuses (its clientMsgId is
      // taken): found by e2e/faults/cluster.test.ts with the leader frozen on NATS 2.9.10.
      if (!(error instanceof DuplicateGoneError)) throw error;
      const copy = await findChatEventAfter(this.deps.bus, this.stream, subject, error.streamSeq, (event) => storedCopy(command, [event]) !== null);
      if (!copy) throw error;
      return { ...copy, duplicate: true };
    }
  }

  /**
   * Appends a message the store lost the seq of (two events with one chat seq, docs/reliability.md)
   * again under the chat's next seq, through the same expected-sequence append as every write,
   * built on the events stored after the lost seq (decideRepair: none if one of them already is
   * this message). `msgId` must differ from the lost copy's, or JetStream's duplicate window would
   * answer with the lost copy itself.
   */
  async repair(lost: LostMessage, msgId: string): Promise<Appended<LostMessage> | { refusal: NotRepaired }> {
    const subject = subjects.chat(this.deps.namespace, lost.chatId);
    const eventId = newId();
    return this.deps.sequencer.appendDecided(
      subject,
      msgId,
      lost.seq,
      (newer, seq) => decideRepair(lost, newer, seq, eventId),
      (after, upto, afterStreamSeq) => eventsBetween(this.deps.bus, this.stream, subject, after, upto, afterStreamSeq),
    );
  }
}

/**
 * What a sender's writer knows as of `seq` and a send depends on: the chat exists, the sender is
 * in it (checked against the projection or the live fan-out as of `seq`), and the reply target,
 * if any, is a visible message of it (checked by the caller).
 */
export function senderBasis(userId: string, seq: number, replyTo: string | null): Basis {
  return {
    seq,
    state: {
      ...initialChatState(),
      exists: true,
      headSeq: seq,
      members: new Map([[userId, { role: 'member', joinedSeq: 0 }]]),
      messages: replyTo ? new Map([[replyTo, { senderId: '', seq, pollId: null, deleted: false }]]) : new Map(),
    },
  };
}

/**
 * What the retention pass knows when it expires a chat's old messages: the chat's head seq (read
 * from the stream) and how far earlier passes expired. ExpireMessages depends on nothing else, so
 * the pass need not read the chat's live part; a newer event makes the writer fold it and decide
 * again, as for any writer.
 */
export function expiryBasis(headSeq: number, expiredUpToSeq: number): Basis {
  return { seq: headSeq, state: { ...initialChatState(), exists: headSeq > 0, headSeq, expiredUpToSeq } };
}
