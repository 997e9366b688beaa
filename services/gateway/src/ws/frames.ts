import { Type } from '@sinclair/typebox';
import { compile, SendMessageFields, UUID_PATTERN, Uuid } from '@parley/contracts';

/** Client frames (api.md, WebSocket). Each is validated before anything acts on it. */

export const SendFrame = compile(
  Type.Object({ op: Type.Literal('send'), chatId: Uuid, ...SendMessageFields }, { additionalProperties: false }),
);
export const AuthFrame = compile(
  Type.Object({ op: Type.Literal('auth'), token: Type.String({ maxLength: 4096 }) }, { additionalProperties: false }),
);

export interface ErrorFrame {
  op: 'error';
  code: string;
  message: string;
  ref?: string;
}

export function errorFrame(code: string, message: string, ref?: string): ErrorFrame {
  return { op: 'error', code, message, ...(ref ? { ref } : {}) };
}

/** The frame's `ref` for errors: the clientMsgId when the frame had one, so the client can match it. */
export function refOf(frame: unknown): string | undefined {
  const ref = (frame as { clientMsgId?: unknown } | null)?.clientMsgId;
  return typeof ref === 'string' && ref.length <= 64 ? ref : undefined;
}

/**
 * A `read` frame's `ref` for errors: its messageId (docs/protocol.md), also when the frame fails
 * its schema, so a client can tell which read to retry; a string of at most 64 characters, as refOf.
 */
export function readRefOf(frame: unknown): string | undefined {
  const ref = (frame as { messageId?: unknown } | null)?.messageId;
  return typeof ref === 'string' && ref.length <= 64 ? ref : undefined;
}

/** Most chats one resume frame may name. */
export const MAX_RESUME_CHATS = 1_000;

export const ResumeFrame = compile(
  Type.Object(
    {
      op: Type.Literal('resume'),
      cursors: Type.Record(Type.String({ pattern: UUID_PATTERN }), Type.Integer({ minimum: 0 }), {
        maxProperties: MAX_RESUME_CHATS,
        additionalProperties: false,
      }),
    },
    { additionalProperties: false },
  ),
);

export const TypingFrame = compile(Type.Object({ op: Type.Literal('typing'), chatId: Uuid }, { additionalProperties: false }));

export const ReadFrame = compile(Type.Object({ op: Type.Literal('read'), chatId: Uuid, messageId: Uuid }, { additionalProperties: false }));
