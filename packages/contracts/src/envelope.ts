import { Type, type Static, type TObject, type TLiteral, type TSchema } from '@sinclair/typebox';

/** Who caused an event and why; the same on every event of every context. */
export const EventMeta = Type.Object(
  {
    eventId: Type.String(),
    occurredAt: Type.String(),
    /** The user whose request produced the event; null for system actions (retention, migrations). */
    actorId: Type.Union([Type.String(), Type.Null()]),
    /** Ties together every event produced by one client request. */
    correlationId: Type.String(),
    /** The event or command that directly caused this one, when there is one. */
    causationId: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);
export type EventMeta = Static<typeof EventMeta>;

/**
 * The versioned envelope every event travels in: `{ type, version, data, meta }`.
 * A change to an event's data that old readers cannot handle gets a new version, never an edit.
 */
export function eventSchema<T extends string, V extends number, D extends TSchema>(
  type: T,
  version: V,
  data: D,
): TObject<{ type: TLiteral<T>; version: TLiteral<V>; data: D; meta: typeof EventMeta }> {
  return Type.Object(
    { type: Type.Literal(type), version: Type.Literal(version), data, meta: EventMeta },
    { additionalProperties: false, $id: `${type}.v${version}` },
  );
}

/**
 * Chat events additionally carry the chat's gap-free `seq` and the chat id at the top level,
 * because every consumer (projection, gateway fan-out, resume) orders and routes by them.
 */
export function chatEventSchema<T extends string, V extends number, D extends TSchema>(
  type: T,
  version: V,
  data: D,
) {
  return Type.Object(
    {
      type: Type.Literal(type),
      version: Type.Literal(version),
      chatId: Type.String(),
      seq: Type.Integer({ minimum: 1 }),
      data,
      meta: EventMeta,
    },
    { additionalProperties: false, $id: `${type}.v${version}` },
  );
}

export interface MetaInput {
  eventId: string;
  occurredAt: Date;
  actorId: string | null;
  correlationId: string;
  causationId?: string | null;
}

export function buildMeta(input: MetaInput): EventMeta {
  return {
    eventId: input.eventId,
    occurredAt: input.occurredAt.toISOString(),
    actorId: input.actorId,
    correlationId: input.correlationId,
    causationId: input.causationId ?? null,
  };
}
