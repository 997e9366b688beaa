import { Type, type Static } from '@sinclair/typebox';
import { eventSchema } from '../envelope.js';

/**
 * Users context. The password hash travels in the event because the stream, not Postgres, is the
 * source of truth: a rebuilt projection must be able to log people in. It is an argon2id hash, never
 * the password, and the stream is internal (see docs/architecture.md, "What is in the streams").
 */
export const UserRegistered = eventSchema(
  'UserRegistered',
  1,
  Type.Object(
    {
      userId: Type.String(),
      username: Type.String(),
      email: Type.String(),
      displayName: Type.String(),
      passwordHash: Type.String(),
    },
    { additionalProperties: false },
  ),
);
export type UserRegistered = Static<typeof UserRegistered>;

/**
 * A claim on a unique name (username or e-mail), published on its own subject with
 * `Nats-Expected-Last-Subject-Sequence: 0` so that JetStream, not a racy read of a projection,
 * decides who gets the name when two registrations collide.
 */
export const IdentityClaimed = eventSchema(
  'IdentityClaimed',
  1,
  Type.Object(
    {
      kind: Type.Union([Type.Literal('username'), Type.Literal('email')]),
      userId: Type.String(),
    },
    { additionalProperties: false },
  ),
);
export type IdentityClaimed = Static<typeof IdentityClaimed>;

/** Only the fields that changed are present; `avatarUrl: null` removes the avatar. */
export const ProfileUpdated = eventSchema(
  'ProfileUpdated',
  1,
  Type.Object(
    {
      userId: Type.String(),
      displayName: Type.Optional(Type.String()),
      bio: Type.Optional(Type.String()),
      avatarUrl: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    },
    { additionalProperties: false },
  ),
);
export type ProfileUpdated = Static<typeof ProfileUpdated>;

export const PasswordChanged = eventSchema(
  'PasswordChanged',
  1,
  Type.Object(
    {
      userId: Type.String(),
      passwordHash: Type.String(),
      reason: Type.Union([Type.Literal('change'), Type.Literal('reset')]),
    },
    { additionalProperties: false },
  ),
);
export type PasswordChanged = Static<typeof PasswordChanged>;

export const ContactAdded = eventSchema(
  'ContactAdded',
  1,
  Type.Object({ userId: Type.String(), contactId: Type.String() }, { additionalProperties: false }),
);
export type ContactAdded = Static<typeof ContactAdded>;

export const ContactRemoved = eventSchema(
  'ContactRemoved',
  1,
  Type.Object({ userId: Type.String(), contactId: Type.String() }, { additionalProperties: false }),
);
export type ContactRemoved = Static<typeof ContactRemoved>;

/**
 * The account was erased on request (DELETE /users/me). Published with a subject rollup, so it
 * replaces every earlier event on the user's subject: the stream keeps only this tombstone, from
 * which a rebuild makes the "deleted account" identity. `purgeMessages` tells the messages service
 * whether the person's messages in others' chats go too.
 */
export const UserErased = eventSchema(
  'UserErased',
  1,
  Type.Object({ userId: Type.String(), purgeMessages: Type.Boolean() }, { additionalProperties: false }),
);
export type UserErased = Static<typeof UserErased>;

export const UserEvents = [UserRegistered, ProfileUpdated, PasswordChanged, ContactAdded, ContactRemoved, UserErased] as const;
/** Every event on a user's subject; switches over it end in a `never` check. */
export type UserEvent = UserRegistered | ProfileUpdated | PasswordChanged | ContactAdded | ContactRemoved | UserErased;
