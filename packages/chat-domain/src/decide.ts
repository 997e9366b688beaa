import type { ChatCreated, ChatEvent, MemberRole, MessageSent, PollPosted } from '@parley/contracts';
import { reactionKey, successorOf, type ChatState } from './state.js';

/** An event as decided: its type and data. The writer adds the seq, version and meta when it appends. */
export type Decided = { [E in ChatEvent as E['type']]: { type: E['type']; data: E['data'] } }[ChatEvent['type']];

export type Refusal = { ok: false; code: 'not_found' | 'forbidden' | 'invalid_request' | 'conflict'; message: string };
export type Decision = { ok: true; events: Decided[] } | Refusal;

/**
 * Every chat command. `actorId` is the user the command is for (authenticated at the gateway).
 * Facts the chat's events cannot know (does a user exist; what a deleted message's tombstone keeps)
 * travel in the command; everything about membership, roles, messages and polls is read from the
 * state, so that a decision taken again after new events can come out differently.
 */
export type ChatCommand =
  /** A new chat, its members and their roles (a direct chat's id comes from the pair's claim). */
  | { type: 'CreateChat'; actorId: string; data: ChatCreated['data'] }
  | { type: 'SendMessage'; actorId: string; data: Omit<MessageSent['data'], 'senderId'> }
  | { type: 'PostPoll'; actorId: string; data: Omit<PollPosted['data'], 'senderId'> }
  | { type: 'EditMessage'; actorId: string; messageId: string; body: string }
  | { type: 'DeleteMessage'; actorId: string; messageId: string; original: { clientMsgId: string; createdAt: string } }
  /**
   * `reacted`: the actor had this reaction as of the basis (one per user, emoji and message:
   * nothing to add); a reaction event after the basis (ChatState.reactions) overrides it.
   */
  | { type: 'React'; actorId: string; messageId: string; emoji: string; reacted: boolean }
  | { type: 'Unreact'; actorId: string; messageId: string; emoji: string; reacted: boolean }
  | { type: 'Vote'; actorId: string; pollId: string; optionIds: string[] }
  | { type: 'ClosePoll'; actorId: string; pollId: string }
  /** `admitted: false`: the user blocked the actor or keeps groups to its contacts (users.admission). */
  | { type: 'AddMember'; actorId: string; userId: string; userExists: boolean; admitted?: boolean }
  /** Removal by an owner or admin, or leaving (actorId === userId). */
  | { type: 'RemoveMember'; actorId: string; userId: string }
  | { type: 'Rename'; actorId: string; title: string }
  /** The retention pass: every message-class event up to `upToSeq` is past the retention period. */
  | { type: 'ExpireMessages'; upToSeq: number; cutoff: string }
  /**
   * The erasure ledger names a message as deleted that a restored backup brought back: the ledger
   * decides, not a member (the author may have left). Deleted in the author's name, as before.
   */
  | { type: 'RedeleteMessage'; messageId: string; original: { clientMsgId: string; createdAt: string } }
  /**
   * An account was erased: its member leaves the chat (and with `purged`, its content goes).
   * `onlyIfMember`: nothing when the person is not a member (the check after an add, which runs
   * whatever the add's answer, and may name someone the add refused); without it a purge also
   * reaches a chat the person left (the erasure process lists the chats they wrote in).
   */
  | { type: 'EraseMember'; userId: string; purged: boolean; onlyIfMember?: boolean };

const refuse = (code: Refusal['code'], message: string): Refusal => ({ ok: false, code, message });
const accept = (...events: Decided[]): Decision => ({ ok: true, events });
const NO_CHAT = refuse('not_found', 'No such chat');
const NO_MESSAGE = refuse('not_found', 'No such message');
const NO_POLL = refuse('not_found', 'No such poll');

const isAdmin = (role: MemberRole | undefined) => role === 'owner' || role === 'admin';

/**
 * Decides a command against the chat's state: the events to append, or why not. Pure: the same
 * state and command give the same decision, so the writer can decide again after a conflict
 * with the events it missed folded in. A chat one is not in looks exactly like one that does not
 * exist (api.md), and so does a message or poll in it.
 */
export function decide(command: ChatCommand, state: ChatState): Decision {
  if (command.type === 'CreateChat') return decideCreate(command, state);
  if (command.type === 'ExpireMessages') {
    if (!state.exists || command.upToSeq <= state.expiredUpToSeq || command.upToSeq > state.headSeq) return accept();
    return accept({ type: 'MessagesExpired', data: { upToSeq: command.upToSeq, cutoff: command.cutoff } });
  }
  if (command.type === 'RedeleteMessage') {
    const message = state.exists ? state.messages.get(command.messageId) : undefined;
    // Gone or a tombstone already (an earlier pass, or the event came back with the backup): nothing to do.
    if (!message || message.deleted) return accept();
    const original = { seq: message.seq, senderId: message.senderId, ...command.original };
    return accept({ type: 'MessageDeleted', data: { messageId: command.messageId, deletedBy: message.senderId, original } });
  }
  if (command.type === 'EraseMember') {
    // No such chat: nothing to write into (a refused add to a made-up chat id must not create one).
    if (!state.exists) return accept();
    const member = state.members.get(command.userId);
    // Gone already: nothing to leave, but a purge still removes what they wrote while they were in.
    if (!member) return command.purged && !command.onlyIfMember ? accept({ type: 'MemberErased', data: { userId: command.userId, purged: true, newOwnerId: null } }) : accept();
    const newOwnerId = member.role === 'owner' ? successorOf(state, command.userId) : null;
    return accept({ type: 'MemberErased', data: { userId: command.userId, purged: command.purged, newOwnerId } });
  }

  const actor = state.exists ? state.members.get(command.actorId) : undefined;
  if (!actor) {
    return command.type === 'EditMessage' || command.type === 'DeleteMessage' || command.type === 'React' || command.type === 'Unreact' ? NO_MESSAGE : command.type === 'Vote' || command.type === 'ClosePoll' ? NO_POLL : NO_CHAT;
  }
  const group = state.type === 'group';

  switch (command.type) {
    case 'SendMessage': {
      const { replyTo } = command.data;
      if (replyTo) {
        const target = state.messages.get(replyTo);
        if (!target || target.deleted || target.seq <= state.expiredUpToSeq) return refuse('invalid_request', 'replyTo must be a message of the same chat');
      }
      return accept({ type: 'MessageSent', data: { ...command.data, senderId: command.actorId } });
    }
    case 'PostPoll':
      return accept({ type: 'PollPosted', data: { ...command.data, senderId: command.actorId } });
    case 'EditMessage': {
      const message = visible(state, command.messageId);
      if (!message) return NO_MESSAGE;
      if (message.senderId !== command.actorId) return refuse('forbidden', 'Only the author may edit a message');
      if (message.pollId) return refuse('invalid_request', 'A poll cannot be edited');
      return accept({ type: 'MessageEdited', data: { messageId: command.messageId, body: command.body, editedBy: command.actorId } });
    }
    case 'DeleteMessage': {
      const message = visible(state, command.messageId);
      if (!message) return NO_MESSAGE;
      if (message.senderId !== command.actorId && !(group && isAdmin(actor.role))) return refuse('forbidden', 'Only the author or a group admin may delete a message');
      const original = { seq: message.seq, senderId: message.senderId, ...command.original };
      return accept({ type: 'MessageDeleted', data: { messageId: command.messageId, deletedBy: command.actorId, original } });
    }
    case 'React':
      if (!visible(state, command.messageId)) return NO_MESSAGE;
      if (hasReaction(state, command)) return accept();
      return accept({ type: 'ReactionAdded', data: { messageId: command.messageId, userId: command.actorId, emoji: command.emoji } });
    case 'Unreact':
      if (!visible(state, command.messageId)) return NO_MESSAGE;
      if (!hasReaction(state, command)) return refuse('not_found', 'No such reaction');
      return accept({ type: 'ReactionRemoved', data: { messageId: command.messageId, userId: command.actorId, emoji: command.emoji } });
    case 'Vote': {
      const poll = state.polls.get(command.pollId);
      if (!poll || !visible(state, poll.messageId)) return NO_POLL;
      if (poll.closed) return refuse('invalid_request', 'The poll is closed');
      if (command.optionIds.some((id) => !poll.optionIds.includes(id))) return refuse('invalid_request', 'Unknown option');
      if (!poll.multiple && command.optionIds.length > 1) return refuse('invalid_request', 'This poll takes a single choice');
      return accept({ type: 'PollVoted', data: { pollId: command.pollId, messageId: poll.messageId, userId: command.actorId, optionIds: [...new Set(command.optionIds)] } });
    }
    case 'ClosePoll': {
      const poll = state.polls.get(command.pollId);
      if (!poll || !visible(state, poll.messageId)) return NO_POLL;
      if (poll.createdBy !== command.actorId) return refuse('forbidden', 'Only the poll creator may close it');
      if (poll.closed) return accept();
      return accept({ type: 'PollClosed', data: { pollId: command.pollId, messageId: poll.messageId, closedBy: command.actorId } });
    }
    case 'AddMember': {
      const problem = groupAdminProblem(group, actor.role);
      if (problem) return problem;
      if (state.members.has(command.userId)) return refuse('conflict', 'That user is already a member');
      if (!command.userExists) return refuse('not_found', 'No such user');
      if (command.admitted === false) return refuse('forbidden', 'That user does not accept being added to groups by you');
      return accept({ type: 'MemberAdded', data: { userId: command.userId, role: 'member', addedBy: command.actorId } });
    }
    case 'RemoveMember': {
      if (!group) return refuse('invalid_request', 'Direct chats have no members to remove');
      const leaving = command.actorId === command.userId;
      const target = state.members.get(command.userId);
      if (!target) return refuse('not_found', 'No such member');
      if (!leaving) {
        if (!isAdmin(actor.role)) return refuse('forbidden', 'Only the group owner or an admin may remove members');
        if (target.role === 'owner' || (target.role === 'admin' && actor.role !== 'owner')) return refuse('forbidden', 'You may not remove this member');
      }
      const newOwnerId = leaving && target.role === 'owner' ? successorOf(state, command.userId) : null;
      return accept({ type: 'MemberRemoved', data: { userId: command.userId, removedBy: command.actorId, reason: leaving ? 'left' : 'removed', newOwnerId } });
    }
    case 'Rename': {
      const problem = groupAdminProblem(group, actor.role);
      if (problem) return problem;
      return accept({ type: 'ChatRenamed', data: { title: command.title, renamedBy: command.actorId } });
    }
    default: {
      const never: never = command;
      return never;
    }
  }
}

/**
 * A chat is created once: if it exists (an earlier attempt of this request, or another replica
 * finishing a direct chat's claim), there is nothing to add. Its shape follows api.md: the creator
 * is in it; a direct chat has exactly two members, neither an owner; a group has the creator as
 * its only owner; nobody is listed twice.
 */
function decideCreate(command: Extract<ChatCommand, { type: 'CreateChat' }>, state: ChatState): Decision {
  if (state.exists) return accept();
  const { data, actorId } = command;
  const ids = data.members.map((m) => m.userId);
  if (data.createdBy !== actorId || !ids.includes(actorId)) return refuse('invalid_request', 'The creator must be a member of the chat');
  if (new Set(ids).size !== ids.length) return refuse('invalid_request', 'A member is listed twice');
  if (data.type === 'direct') {
    if (ids.length !== 2) return refuse('invalid_request', 'A direct chat needs another user');
    if (data.members.some((m) => m.role !== 'member') || data.title !== null) return refuse('invalid_request', 'A direct chat has no title and no roles');
  } else {
    const owners = data.members.filter((m) => m.role === 'owner');
    if (owners.length !== 1 || owners[0]!.userId !== actorId) return refuse('invalid_request', 'The creator owns a group, alone');
  }
  return accept({ type: 'ChatCreated', data });
}

/** Whether the actor has this reaction: an event folded after the basis, else what the basis held. */
function hasReaction(state: ChatState, command: { messageId: string; actorId: string; emoji: string; reacted: boolean }): boolean {
  return state.reactions.get(reactionKey(command.messageId, command.actorId, command.emoji)) ?? command.reacted;
}

function visible(state: ChatState, messageId: string) {
  const message = state.messages.get(messageId);
  return message && !message.deleted && message.seq > state.expiredUpToSeq ? message : null;
}

function groupAdminProblem(group: boolean, role: MemberRole): Refusal | null {
  if (!group) return refuse('forbidden', 'Only group chats have administrators');
  if (!isAdmin(role)) return refuse('forbidden', 'Only the group owner or an admin may do this');
  return null;
}

