import type { ChatEvent, ChatType, MemberRole } from '@parley/contracts';

/**
 * What a decision about a chat depends on and can race with (issue 17): whether the chat exists,
 * its type, who is in it with which role, its owner, its head seq, and the messages and polls the
 * state has seen. Built by folding the chat's events (`evolve`), from a snapshot of the
 * projection or from the first event; never read from anywhere else while deciding.
 */
export interface ChatState {
  exists: boolean;
  type: ChatType | null;
  /** Members by user id, with their role and the seq at which they (last) joined. */
  members: ReadonlyMap<string, { role: MemberRole; joinedSeq: number }>;
  /** The chat's latest seq: the next event takes headSeq + 1. */
  headSeq: number;
  /**
   * Messages this state knows (seen in its events, or loaded with the snapshot for a command that
   * names one): author, poll, deleted. A message it does not know is looked up by the writer.
   */
  messages: ReadonlyMap<string, KnownMessage>;
  polls: ReadonlyMap<string, KnownPoll>;
  /** Everything up to this seq has expired (MessagesExpired). */
  expiredUpToSeq: number;
  /**
   * Reactions the folded events added (true) or removed (false), by reactionKey. A command's own
   * `reacted` is what the projection held at its basis; an event after that overrides it, so two
   * identical reactions sent at once add one (the second decides again on the first's event).
   */
  reactions: ReadonlyMap<string, boolean>;
}

/** A user's reaction with one emoji on one message. */
export const reactionKey = (messageId: string, userId: string, emoji: string): string => `${messageId} ${userId} ${emoji}`;

export interface KnownMessage {
  senderId: string;
  seq: number;
  pollId: string | null;
  deleted: boolean;
}

export interface KnownPoll {
  messageId: string;
  createdBy: string;
  optionIds: readonly string[];
  multiple: boolean;
  closed: boolean;
}

export const initialChatState = (): ChatState => ({
  exists: false,
  type: null,
  members: new Map(),
  headSeq: 0,
  messages: new Map(),
  polls: new Map(),
  expiredUpToSeq: 0,
  reactions: new Map(),
});

/**
 * Who takes over when the owner leaves or is erased: the longest-standing admin, else the
 * longest-standing member (ties by user id), as the projection has always chosen.
 */
export function successorOf(state: ChatState, leavingId: string): string | null {
  const candidates = [...state.members].filter(([id]) => id !== leavingId);
  candidates.sort(([a, ma], [b, mb]) => Number(mb.role === 'admin') - Number(ma.role === 'admin') || ma.joinedSeq - mb.joinedSeq || (a < b ? -1 : a > b ? 1 : 0));
  return candidates[0]?.[0] ?? null;
}

/** Folds one stored event into the state. Pure; unknown-to-the-state references are ignored. */
export function evolve(state: ChatState, event: ChatEvent): ChatState {
  return fold(state, [event]);
}

/**
 * Folds events into the state: one copy of the state, then every event applied to the copy, so a
 * writer that folds the events of a busy chat does not copy its maps once per event.
 */
export function fold(state: ChatState, events: readonly ChatEvent[]): ChatState {
  if (events.length === 0) return state;
  const draft: Draft = { ...state, members: new Map(state.members), messages: new Map(state.messages), polls: new Map(state.polls), reactions: new Map(state.reactions) };
  for (const event of events) apply(draft, event);
  return draft;
}

type Draft = Omit<ChatState, 'members' | 'messages' | 'polls' | 'reactions'> & {
  members: Map<string, { role: MemberRole; joinedSeq: number }>;
  messages: Map<string, KnownMessage>;
  polls: Map<string, KnownPoll>;
  reactions: Map<string, boolean>;
};

function apply(draft: Draft, event: ChatEvent): void {
  draft.headSeq = Math.max(draft.headSeq, event.seq);
  switch (event.type) {
    case 'ChatCreated':
      draft.exists = true;
      draft.type = event.data.type;
      draft.members.clear();
      for (const m of event.data.members) draft.members.set(m.userId, { role: m.role, joinedSeq: event.seq });
      return;
    case 'MemberAdded':
      draft.members.set(event.data.userId, { role: event.data.role, joinedSeq: event.seq });
      return;
    case 'MemberRemoved':
    case 'MemberErased': {
      draft.members.delete(event.data.userId);
      const heir = event.data.newOwnerId ? draft.members.get(event.data.newOwnerId) : undefined;
      if (event.data.newOwnerId && heir) draft.members.set(event.data.newOwnerId, { ...heir, role: 'owner' });
      // An erasure with a purge takes the person's messages and polls with it, as the projection
      // does: the decider must refuse a reaction, vote, reply or deletion aimed at one of them
      // (it accepted them, and the projection then wrote a tombstone naming the erased sender).
      if (event.type === 'MemberErased' && event.data.purged) {
        for (const [id, message] of draft.messages) if (message.senderId === event.data.userId) draft.messages.set(id, { ...message, deleted: true });
      }
      return;
    }
    case 'MessageSent':
      draft.messages.set(event.data.messageId, { senderId: event.data.senderId, seq: event.seq, pollId: null, deleted: false });
      return;
    case 'PollPosted':
      draft.messages.set(event.data.messageId, { senderId: event.data.senderId, seq: event.seq, pollId: event.data.pollId, deleted: false });
      draft.polls.set(event.data.pollId, { messageId: event.data.messageId, createdBy: event.data.senderId, optionIds: event.data.options.map((o) => o.id), multiple: event.data.multiple, closed: false });
      return;
    case 'PollClosed': {
      const poll = draft.polls.get(event.data.pollId);
      if (poll) draft.polls.set(event.data.pollId, { ...poll, closed: true });
      return;
    }
    case 'MessageDeleted': {
      const known = draft.messages.get(event.data.messageId);
      const original = event.data.original;
      if (known) draft.messages.set(event.data.messageId, { ...known, deleted: true });
      else if (original) draft.messages.set(event.data.messageId, { senderId: original.senderId, seq: original.seq, pollId: null, deleted: true });
      return;
    }
    case 'MessagesExpired':
      draft.expiredUpToSeq = Math.max(draft.expiredUpToSeq, event.data.upToSeq);
      return;
    case 'ReactionAdded':
    case 'ReactionRemoved':
      draft.reactions.set(reactionKey(event.data.messageId, event.data.userId, event.data.emoji), event.type === 'ReactionAdded');
      return;
    case 'ChatRenamed':
    case 'MessageEdited':
    case 'PollVoted':
      return;
    default: {
      const never: never = event;
      return never;
    }
  }
}
