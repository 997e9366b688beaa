import { Type } from '@sinclair/typebox';
import { newId, Uuid, type PollClosed, type PollPosted, type PollVoted } from '@parley/contracts';
import { Forbidden, InvalidRequest, NotFound, type ApiRouter } from '@parley/http';
import type { Queryable } from '@parley/pg';
import { appendChatEvent, type AppendDeps } from '../chats/append.js';
import { requireMember } from '../chats/access.js';
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

/** The poll if the caller is a member of its chat; 404 otherwise (as if it did not exist). */
async function visiblePoll(deps: AppendDeps, userId: string, pollId: string): Promise<PollRow> {
  const poll = (await findPoll(deps.pool, pollId)) ?? (await deps.barrier().then(() => findPoll(deps.pool, pollId)));
  if (!poll) throw new NotFound('No such poll');
  await requireMember(deps.pool, poll.chat_id, userId).catch(() => {
    throw new NotFound('No such poll');
  });
  return poll;
}

export function pollRoutes(router: ApiRouter, deps: AppendDeps): void {
  router.route({
    method: 'POST',
    url: '/api/v1/chats/:id/polls',
    schema: { params: IdParams, body: PollBody },
    handler: async ({ params, body, auth, request }) => {
      await requireMember(deps.pool, params.id, auth.userId);
      const texts = body.options.map((o) => o.trim());
      if (texts.some((t) => t.length === 0) || new Set(texts).size !== texts.length) throw new InvalidRequest('Options must be non-empty and distinct');
      const messageId = newId();
      const pollId = newId();
      await appendChatEvent<PollPosted>(deps, params.id, `poll:${pollId}`, auth.userId, request.requestId, {
        type: 'PollPosted',
        data: {
          messageId,
          senderId: auth.userId,
          clientMsgId: `poll-${pollId}`,
          pollId,
          question: body.question,
          options: texts.map((text, i) => ({ id: String(i + 1), text })),
          multiple: body.multiple ?? false,
        },
      }, { waitForProjection: true });
      const [view] = await messageViews(deps.pool, [(await findMessage(deps.pool, messageId))!], auth.userId);
      return { status: 201, body: view };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/polls/:id/votes',
    schema: { params: IdParams, body: VoteBody },
    handler: async ({ params, body, auth, request }) => {
      const poll = await visiblePoll(deps, auth.userId, params.id);
      if (poll.closed) throw new InvalidRequest('The poll is closed');
      const valid = new Set(poll.options.map((o) => o.id));
      if (body.optionIds.some((id) => !valid.has(id))) throw new InvalidRequest('Unknown option');
      if (!poll.multiple && body.optionIds.length > 1) throw new InvalidRequest('This poll takes a single choice');
      await appendChatEvent<PollVoted>(deps, poll.chat_id, `vote:${poll.id}:${auth.userId}:${request.requestId}`, auth.userId, request.requestId, {
        type: 'PollVoted',
        data: { pollId: poll.id, messageId: poll.message_id, userId: auth.userId, optionIds: body.optionIds },
      }, { waitForProjection: true });
      return { status: 200, body: (await pollsOf(deps.pool, [poll.id], auth.userId)).get(poll.id) };
    },
  });

  router.route({
    method: 'POST',
    url: '/api/v1/polls/:id/close',
    schema: { params: IdParams },
    handler: async ({ params, auth, request }) => {
      const poll = await visiblePoll(deps, auth.userId, params.id);
      if (poll.created_by !== auth.userId) throw new Forbidden('Only the poll creator may close it');
      if (!poll.closed) {
        await appendChatEvent<PollClosed>(deps, poll.chat_id, `close:${poll.id}`, auth.userId, request.requestId, {
          type: 'PollClosed',
          data: { pollId: poll.id, messageId: poll.message_id, closedBy: auth.userId },
        }, { waitForProjection: true });
      }
      return { status: 200, body: (await pollsOf(deps.pool, [poll.id], auth.userId)).get(poll.id) };
    },
  });
}
