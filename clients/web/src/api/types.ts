/**
 * The shapes of the client contract (shared api.md), written from that page alone: the web client
 * is meant to prove the public contract is enough, so nothing here comes from the services' code.
 */

export interface User {
  id: string;
  username: string;
  displayName: string | null;
  bio: string | null;
  avatarUrl: string | null;
  createdAt: string;
  /** Only on GET/PATCH /users/me. */
  email?: string;
}

export interface Session {
  user: User;
  accessToken: string;
  refreshToken: string;
}

export interface Tokens {
  accessToken: string;
  refreshToken: string;
}

export interface Member {
  userId: string;
  role: string;
}

export interface Chat {
  id: string;
  type: 'direct' | 'group';
  title: string | null;
  members: Member[];
  lastMessage: Message | null;
  unreadCount: number;
  createdAt: string;
}

export interface Attachment {
  id: string;
  name: string;
  size: number;
  mime: string;
}

export interface Reaction {
  emoji: string;
  count: number;
  me: boolean;
}

export interface PollOption {
  id: string;
  text: string;
  votes: number;
}

export interface Poll {
  id: string;
  question: string;
  options: PollOption[];
  multiple: boolean;
  closed: boolean;
  myVotes: string[];
}

export interface Message {
  id: string;
  chatId: string;
  senderId: string;
  body: string;
  replyTo: string | null;
  attachments: Attachment[];
  reactions: Reaction[];
  poll: Poll | null;
  editedAt: string | null;
  deletedAt: string | null;
  createdAt: string;
  seq: number;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** A page of a chat's history; `seq` is the newest chat event the history reflects. */
export interface MessagePage extends Page<Message> {
  seq: number;
}

export type EventType =
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

export interface ChatEvent {
  op: 'event';
  type: EventType;
  chatId: string;
  seq: number;
  data: Record<string, unknown>;
  at: string;
}

/** Every frame the server may send over /ws. */
export type ServerFrame =
  | ChatEvent
  | { op: 'ack'; clientMsgId: string; messageId: string; seq: number }
  | { op: 'typing'; chatId: string; userId: string }
  | { op: 'presence'; userId: string; online: boolean; lastSeen?: string }
  | { op: 'profile'; user: User }
  | { op: 'error'; code: string; message: string; ref?: string }
  | { op: 'reset'; chatId: string; seq: number }
  | { op: 'resumed' }
  | { op: 'authenticated'; userId: string }
  | { op: 'pong' };

/** The error envelope every failed HTTP call carries. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}
