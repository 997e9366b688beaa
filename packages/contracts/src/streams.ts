import { subjects } from './subjects.js';

/**
 * The declared JetStream streams. One stream per retention class (design.md): what differs between
 * them is how long data lives and how it is compacted, so each gets its own limits.
 *
 * Chat events deliberately have no `max_age`: a chat's subject must keep its `ChatCreated` event and
 * its latest event forever (the next `seq` is derived from the latest one), so time-based deletion of
 * old messages is done by the retention service per message, not by the stream's age limit.
 */
export interface StreamDeclaration {
  name: string;
  description: string;
  subjects: string[];
  /** Age limit in seconds; 0 keeps messages until deleted. */
  maxAgeSeconds: number;
  /** -1 for no per-subject limit. */
  maxMsgsPerSubject: number;
  /** Window in which a repeated `Nats-Msg-Id` is answered as a duplicate instead of stored. */
  duplicateWindowSeconds: number;
}

export type StreamKey = 'users' | 'chats';

export function streamName(ns: string, key: StreamKey): string {
  return `${ns}_${key}`;
}

export function declaredStreams(ns: string): Record<StreamKey, StreamDeclaration> {
  return {
    users: {
      name: streamName(ns, 'users'),
      description: 'Accounts and profiles; kept until erasure',
      subjects: [subjects.allUsers(ns), subjects.allIdentityClaims(ns)],
      maxAgeSeconds: 0,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
    },
    chats: {
      name: streamName(ns, 'chats'),
      description: 'Every chat event (membership, messages) on one subject per chat',
      subjects: [subjects.allChats(ns), subjects.allChatClaims(ns)],
      maxAgeSeconds: 0,
      maxMsgsPerSubject: -1,
      duplicateWindowSeconds: 120,
    },
  };
}
