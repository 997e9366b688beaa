import { Type } from '@sinclair/typebox';
import type { ChatCommand } from '@parley/chat-domain';
import { newId, Uuid } from '@parley/contracts';
import { InvalidRequest, NotFound, type ApiRouter } from '@parley/http';
import type { Queryable } from '@parley/pg';
import type { AppendDeps } from '../chats/append.js';
import { basisWith, membersBasis, precheck, writeChat, type WriteDeps } from '../chats/write.js';
import { findMessage, messageViews, pollsOf } from '../messages/queries.js';

const PollBody = Type.Object(
  {
    question: Type.String({ minLength: 1, maxLength: 300 }),
    options: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 2, maxItems: 10 }),
    multiple: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const VoteBody = Type.Object({ optionIds: Type.Array(Type.String({ maxLength: 16 }), { maxItems: 10, uniqueItems: true }) }, { additionalProperties: false });
const IdParams = Type.Object({ id: Uuid });

interface PollRow {
  id: string;
  message_id: string;
  chat_id: string;
  created_by: string;
  options: { id: string; text: string }[];
  multiple: boolean;
  closed: boolean;
}

async function findPoll(db: Queryable, pollId: string): Promise<PollRow | null> {
  const { rows } = await db.query<PollRow>('SELECT id, message_id, chat_id, created_by, options, multiple, closed FROM messages.polls WHERE id = $1', [pollId]);
  return rows[0] ?? null;
}

/** The poll's row (read-your-writes: a poll just posted is found); membership is the decider's. */
async function lookupPoll(deps: AppendDeps, pollId: string): Promise<PollRow> {
  const poll = (await findPoll(deps.pool, pollId)) ?? (await deps.barrier().then(() => findPoll(deps.pool, pollId)));
  if (!poll) throw new NotFound('No such poll');
  return poll;
}

export function pollRoutes(router: ApiRouter, deps: AppendDeps & WriteDeps): void {
  router.route({
    method: 'POST',
    url: '/api/v1/chats/:id/polls',
    schema: { params: IdParams, body: PollBody },
    handler: async ({ params, body, auth, request }) => {
      const messageId = newId();
      const pollId = newId();
      const texts = body.options.map((o) => o.trim());
      const command: ChatCommand = {
        type: 'PostPoll',
        actorId: auth.userId,
        data: { messageId, clientMsgId: `poll-${pollId}`, pollId, question: body.question, options: texts.map((text, i) => ({ id: String(i + 1), text })), multiple: body.multiple ?? false },
      };
      const basis = await membersBasis(deps.pool, params.id);
      precheck(command, basis); // a stranger learns nothing from a 400 about their input
      if (texts.some((t) => t.length === 0) || new Set(texts).size !== texts.length) throw new InvalidRequest('Options must be non-empty and distinct');
      await writeChat(deps, params.id, command, { msgId: `poll:${pollId}`, actorId: auth.userId, correlationId: request.requestId, basis });
      const [view] = await messageViews(deps.pool, [(await findMessage(deps.pool, messageId))!], auth.userId);
      return { status: 201, body: view };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/polls/:id/votes',
    schema: { params: IdParams, body: VoteBody },
    handler: async ({ params, body, auth, request }) => {
      const poll = await lookupPoll(deps, params.id);
      await writeChat(deps, poll.chat_id, { type: 'Vote', actorId: auth.userId, pollId: poll.id, optionIds: body.optionIds }, {
        msgId: `vote:${poll.id}:${auth.userId}:${request.requestId}`,
        actorId: auth.userId,
        correlationId: request.requestId,
        basis: await basisWith(deps.pool, poll.chat_id, { pollId: poll.id }),
      });
      return { status: 200, body: (await pollsOf(deps.pool, [poll.id], auth.userId)).get(poll.id) };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/polls/:id/close',
    schema: { params: IdParams },
    handler: async ({ params, auth, request }) => {
      const poll = await lookupPoll(deps, params.id);
      await writeChat(deps, poll.chat_id, { type: 'ClosePoll', actorId: auth.userId, pollId: poll.id }, {
        msgId: `close:${poll.id}`,
        actorId: auth.userId,
        correlationId: request.requestId,
        basis: await basisWith(deps.pool, poll.chat_id, { pollId: poll.id }),
      });
      return { status: 200, body: (await pollsOf(deps.pool, [poll.id], auth.userId)).get(poll.id) };
    },
  });
}
