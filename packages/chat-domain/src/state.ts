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
}

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
});

/** The owner, if any (a group whose owner left names a successor in the same event). */
export function ownerOf(state: ChatState): string | null {
  for (const [userId, m] of state.members) if (m.role === 'owner') return userId;
  return null;
}

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
  const next = { ...state, headSeq: Math.max(state.headSeq, event.seq) };
  const members = () => new Map(state.members);
  const messages = () => new Map(state.messages);
  const polls = () => new Map(state.polls);
  switch (event.type) {
    case 'ChatCreated': {
      const m = new Map(event.data.members.map((x) => [x.userId, { role: x.role, joinedSeq: event.seq }] as const));
      return { ...next, exists: true, type: event.data.type, members: m };
    }
    case 'MemberAdded': {
      const m = members();
      m.set(event.data.userId, { role: event.data.role, joinedSeq: event.seq });
      return { ...next, members: m };
    }
    case 'MemberRemoved':
    case 'MemberErased': {
      const m = members();
      m.delete(event.data.userId);
      const heir = event.data.newOwnerId ? m.get(event.data.newOwnerId) : undefined;
      if (event.data.newOwnerId && heir) m.set(event.data.newOwnerId, { ...heir, role: 'owner' });
      return { ...next, members: m };
    }
    case 'MessageSent': {
      const msgs = messages();
      msgs.set(event.data.messageId, { senderId: event.data.senderId, seq: event.seq, pollId: null, deleted: false });
      return { ...next, messages: msgs };
    }
    case 'PollPosted': {
      const msgs = messages();
      msgs.set(event.data.messageId, { senderId: event.data.senderId, seq: event.seq, pollId: event.data.pollId, deleted: false });
      const p = polls();
      p.set(event.data.pollId, { messageId: event.data.messageId, createdBy: event.data.senderId, optionIds: event.data.options.map((o) => o.id), multiple: event.data.multiple, closed: false });
      return { ...next, messages: msgs, polls: p };
    }
    case 'PollClosed': {
      const poll = state.polls.get(event.data.pollId);
      if (!poll) return next;
      const p = polls();
      p.set(event.data.pollId, { ...poll, closed: true });
      return { ...next, polls: p };
    }
    case 'MessageDeleted': {
      const known = state.messages.get(event.data.messageId);
      const original = event.data.original;
      const msgs = messages();
      if (known) msgs.set(event.data.messageId, { ...known, deleted: true });
      else if (original) msgs.set(event.data.messageId, { senderId: original.senderId, seq: original.seq, pollId: null, deleted: true });
      return { ...next, messages: msgs };
    }
    case 'MessagesExpired':
      return { ...next, expiredUpToSeq: Math.max(state.expiredUpToSeq, event.data.upToSeq) };
    case 'ChatRenamed':
    case 'MessageEdited':
    case 'ReactionAdded':
    case 'ReactionRemoved':
    case 'PollVoted':
      return next;
    default: {
      const never: never = event;
      return never;
    }
  }
}
