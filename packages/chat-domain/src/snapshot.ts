import type { ChatEvent, ChatSnapshot } from '@parley/contracts';

export type SnapshotData = ChatSnapshot['data'];

/** Events that move a chat up the chat list; the snapshot keeps the latest one's time, as the projection does. */
const ACTIVITY = new Set<ChatEvent['type']>(['ChatCreated', 'MessageSent', 'PollPosted', 'MemberAdded']);

/**
 * Folds a chat's events into its structure snapshot (issue 18: what must outlive the chat's purged
 * events). The same rules as the chats projection (services/messages/src/chats/projection.ts):
 * ChatCreated makes the members with joinedSeq = its seq, MemberAdded sets a member's role and
 * joinedSeq, MemberRemoved and MemberErased take a member out and promote `newOwnerId`, ChatRenamed
 * sets the title; every event moves `seq`. Without a snapshot and a ChatCreated there is nothing to
 * fold into: the answer stays null (the caller must then keep the chat's events).
 */
export function foldSnapshot(snapshot: SnapshotData | null, events: readonly ChatEvent[]): SnapshotData | null {
  let current = snapshot ? { ...snapshot, members: [...snapshot.members] } : null;
  for (const event of events) {
    if (current && event.seq <= current.seq) continue; // already folded in (a rerun after a crash)
    if (event.type === 'ChatCreated') {
      current ??= {
        chatId: event.chatId,
        seq: event.seq,
        type: event.data.type,
        title: event.data.title,
        createdBy: event.data.createdBy,
        createdAt: event.meta.occurredAt,
        lastActivityAt: event.meta.occurredAt,
        pair: event.data.type === 'direct' && event.data.members.length === 2 ? event.data.members.map((m) => m.userId).sort() : null,
        members: event.data.members.map((m) => ({ userId: m.userId, role: m.role, joinedSeq: event.seq })),
      };
    }
    if (!current) continue;
    current.seq = event.seq;
    if (ACTIVITY.has(event.type) && event.meta.occurredAt > current.lastActivityAt) current.lastActivityAt = event.meta.occurredAt;
    switch (event.type) {
      case 'ChatRenamed':
        current.title = event.data.title;
        break;
      case 'MemberAdded':
        current.members = [...current.members.filter((m) => m.userId !== event.data.userId), { userId: event.data.userId, role: event.data.role, joinedSeq: event.seq }];
        break;
      case 'MemberRemoved':
      case 'MemberErased': {
        const { userId, newOwnerId } = event.data;
        current.members = current.members.filter((m) => m.userId !== userId).map((m) => (m.userId === newOwnerId ? { ...m, role: 'owner' as const } : m));
        break;
      }
      default:
        break;
    }
  }
  return current;
}
