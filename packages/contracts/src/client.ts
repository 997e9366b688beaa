import type { ChatCreated, ChatEvent, ChatMember, ChatType, MessageSent } from './events/chats.js';

/** Shapes clients see (api.md). Services may add fields, never rename or drop these. */
export interface UserView {
  id: string;
  username: string;
  displayName: string;
  bio: string;
  avatarUrl: string | null;
  createdAt: string;
  email?: string;
}

export interface MessageView {
  id: string;
  chatId: string;
  senderId: string;
  body: string;
  replyTo: string | null;
  attachments: { id: string; name: string; size: number; mime: string }[];
  reactions: { emoji: string; count: number; me: boolean }[];
  poll: null;
  editedAt: string | null;
  deletedAt: string | null;
  createdAt: string;
  seq: number;
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
    attachments: [],
    reactions: [],
    poll: null,
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
    default: {
      const unhandled: never = event;
      throw new Error(`no client mapping for event ${(unhandled as { type: string }).type}`);
    }
  }
}

/** The user ids an event concerns beyond the chat's current members (a new chat's members). */
export function membersAddedBy(event: ChatEvent): string[] {
  switch (event.type) {
    case 'ChatCreated':
      return event.data.members.map((m) => m.userId);
    case 'MessageSent':
      return [];
    default: {
      const unhandled: never = event;
      return unhandled;
    }
  }
}
