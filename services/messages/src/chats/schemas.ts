import { Type } from '@sinclair/typebox';
import { Uuid } from '@parley/contracts';
import { PageQuery } from '@parley/http';


/** Most members a group may be created with in one request. */
export const MAX_GROUP_MEMBERS = 200;

export const CreateChatBody = Type.Union([
  Type.Object({ type: Type.Literal('direct'), userId: Uuid }, { additionalProperties: false }),
  Type.Object(
    {
      type: Type.Literal('group'),
      title: Type.String({ minLength: 1, maxLength: 128 }),
      memberIds: Type.Array(Uuid, { maxItems: MAX_GROUP_MEMBERS, uniqueItems: true }),
    },
    { additionalProperties: false },
  ),
]);

export const ChatIdParams = Type.Object({ id: Uuid }, { additionalProperties: false });
export const ListQuery = Type.Object(PageQuery, { additionalProperties: false });
