import type { ChatCreated, ChatEvent, ChatMember, ChatType, MessageSent, PollPosted } from './events/chats.js';

/** Shapes clients see (api.md). Services may add fields, never rename or drop these. */
export interface UserView {
  id: string;
  username: string;
  displayName: string;
  bio: string;
  avatarUrl: string | null;
  createdAt: string;
  email?: string;
  /** Beside `email` only: whether the owner proved they receive mail there. */
  emailVerified?: boolean;
  /** Present (true) on an erased account, which keeps only its id. */
  deleted?: true;
}

export interface MessageView {
  id: string;
  chatId: string;
  senderId: string;
  body: string;
  replyTo: string | null;
  attachments: { id: string; name: string; size: number; mime: string }[];
  reactions: { emoji: string; count: number; me: boolean }[];
  poll: PollView | null;
  editedAt: string | null;
  deletedAt: string | null;
  createdAt: string;
  seq: number;
}

export interface PollView {
  id: string;
  question: string;
  options: { id: string; text: string; votes: number }[];
  multiple: boolean;
  closed: boolean;
  myVotes: string[];
}

export interface ChatView {
  id: string;
  type: ChatType;
  title: string | null;
  members: ChatMember[];
  lastMessage: MessageView | null;
  unreadCount: number;
  createdAt: string;
}

export type ClientEventType =
  | 'message.created'
  | 'message.edited'
  | 'message.deleted'
  | 'reaction.added'
  | 'reaction.removed'
  | 'poll.voted'
  | 'chat.created'
  | 'chat.updated'
  | 'member.added'
  | 'member.removed'
  | 'read.updated';

export interface ClientEventFrame {
  op: 'event';
  type: ClientEventType;
  chatId: string;
  seq: number;
  data: unknown;
  at: string;
}

export function messageViewFromEvent(event: MessageSent): MessageView {
  return {
    id: event.data.messageId,
    chatId: event.chatId,
    senderId: event.data.senderId,
    body: event.data.body,
    replyTo: event.data.replyTo,
    attachments: event.data.attachments ?? [],
    reactions: [],
    poll: null,
    editedAt: null,
    deletedAt: null,
    createdAt: event.meta.occurredAt,
    seq: event.seq,
  };
}

/** A new poll message as its members first see it (no votes yet). */
export function pollMessageViewFromEvent(event: PollPosted): MessageView {
  const d = event.data;
  return {
    id: d.messageId,
    chatId: event.chatId,
    senderId: d.senderId,
    body: d.question,
    replyTo: null,
    attachments: [],
    reactions: [],
    poll: { id: d.pollId, question: d.question, options: d.options.map((o) => ({ ...o, votes: 0 })), multiple: d.multiple, closed: false, myVotes: [] },
    editedAt: null,
    deletedAt: null,
    createdAt: event.meta.occurredAt,
    seq: event.seq,
  };
}

export function chatViewFromEvent(event: ChatCreated): ChatView {
  return {
    id: event.chatId,
    type: event.data.type,
    title: event.data.title,
    members: event.data.members,
    lastMessage: null,
    unreadCount: 0,
    createdAt: event.meta.occurredAt,
  };
}

/** The frame a WebSocket client gets for a stored chat event. */
export function toClientEvent(event: ChatEvent): ClientEventFrame {
  const base = { op: 'event' as const, chatId: event.chatId, seq: event.seq, at: event.meta.occurredAt };
  switch (event.type) {
    case 'ChatCreated':
      return { ...base, type: 'chat.created', data: chatViewFromEvent(event) };
    case 'MessageSent':
      return { ...base, type: 'message.created', data: messageViewFromEvent(event) };
    case 'PollPosted':
      return { ...base, type: 'message.created', data: pollMessageViewFromEvent(event) };
    case 'ChatRenamed':
      return { ...base, type: 'chat.updated', data: { title: event.data.title } };
    case 'MemberAdded':
      return { ...base, type: 'member.added', data: { userId: event.data.userId, role: event.data.role } };
    case 'MemberRemoved':
      return { ...base, type: 'member.removed', data: { userId: event.data.userId, reason: event.data.reason, newOwnerId: event.data.newOwnerId } };
    case 'MessageEdited':
      return { ...base, type: 'message.edited', data: { messageId: event.data.messageId, body: event.data.body, editedAt: event.meta.occurredAt } };
    case 'MessageDeleted':
      return { ...base, type: 'message.deleted', data: { messageId: event.data.messageId, deletedAt: event.meta.occurredAt } };
    case 'ReactionAdded':
      return { ...base, type: 'reaction.added', data: { messageId: event.data.messageId, userId: event.data.userId, emoji: event.data.emoji } };
    case 'ReactionRemoved':
      return { ...base, type: 'reaction.removed', data: { messageId: event.data.messageId, userId: event.data.userId, emoji: event.data.emoji } };
    case 'PollVoted':
      return { ...base, type: 'poll.voted', data: { pollId: event.data.pollId, messageId: event.data.messageId, userId: event.data.userId, optionIds: event.data.optionIds } };
    case 'PollClosed':
      return { ...base, type: 'poll.voted', data: { pollId: event.data.pollId, messageId: event.data.messageId, closed: true } };
    case 'MessagesExpired':
      // Not a new type (api.md lists them): the chat changed, its history now starts after upToSeq.
      return { ...base, type: 'chat.updated', data: { historyExpiredUpToSeq: event.data.upToSeq, expiredBefore: event.data.cutoff } };
    case 'MemberErased':
      return { ...base, type: 'member.removed', data: { userId: event.data.userId, reason: 'left', newOwnerId: event.data.newOwnerId, erased: true, purged: event.data.purged } };
    default: {
      const unhandled: never = event;
      throw new Error(`no client mapping for event ${(unhandled as { type: string }).type}`);
    }
  }
}

/** The users an event makes members (they receive it, and the chat from then on). */
export function membersAddedBy(event: ChatEvent): string[] {
  if (event.type === 'ChatCreated') return event.data.members.map((m) => m.userId);
  if (event.type === 'MemberAdded') return [event.data.userId];
  return [];
}

/** The user an event removes from the chat (they receive that event, and nothing after it). */
export function memberRemovedBy(event: ChatEvent): string | null {
  return event.type === 'MemberRemoved' || event.type === 'MemberErased' ? event.data.userId : null;
}
