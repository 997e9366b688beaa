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

/**
 * The account's owner proved they receive mail at its address (issue 23, finding 5): they followed
 * the link of a verification mail. The address itself is not repeated here; the account has one.
 */
export const EmailVerified = eventSchema(
  'EmailVerified',
  1,
  Type.Object({ userId: Type.String() }, { additionalProperties: false }),
);
export type EmailVerified = Static<typeof EmailVerified>;

/** Who may do what to this account (issue 23, finding 8): everyone, the account's contacts, or nobody. */
export const Audience = Type.Union([Type.Literal('everyone'), Type.Literal('contacts'), Type.Literal('nobody')]);
export type Audience = Static<typeof Audience>;

/**
 * The account's privacy settings changed; only the fields that changed are present. `groupAdd`:
 * who may add the account to groups (and start direct chats with it); `presence`: who sees it
 * online ("contacts" means the account's own contacts, so a one-sided add reveals nothing).
 */
export const PrivacyChanged = eventSchema(
  'PrivacyChanged',
  1,
  Type.Object({ userId: Type.String(), groupAdd: Type.Optional(Audience), presence: Type.Optional(Audience) }, { additionalProperties: false }),
);
export type PrivacyChanged = Static<typeof PrivacyChanged>;

/** The account blocked another: no new chats with it, no adding it to groups, no presence, no contact. */
export const UserBlocked = eventSchema(
  'UserBlocked',
  1,
  Type.Object({ userId: Type.String(), blockedId: Type.String() }, { additionalProperties: false }),
);
export type UserBlocked = Static<typeof UserBlocked>;

export const UserUnblocked = eventSchema(
  'UserUnblocked',
  1,
  Type.Object({ userId: Type.String(), blockedId: Type.String() }, { additionalProperties: false }),
);
export type UserUnblocked = Static<typeof UserUnblocked>;

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

export const UserEvents = [UserRegistered, ProfileUpdated, PasswordChanged, EmailVerified, PrivacyChanged, UserBlocked, UserUnblocked, ContactAdded, ContactRemoved, UserErased] as const;
/** Every event on a user's subject; switches over it end in a `never` check. */
export type UserEvent =
  | UserRegistered
  | ProfileUpdated
  | PasswordChanged
  | EmailVerified
  | PrivacyChanged
  | UserBlocked
  | UserUnblocked
  | ContactAdded
  | ContactRemoved
  | UserErased;
