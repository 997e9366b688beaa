import { Type } from '@sinclair/typebox';

/** Request bodies of the auth routes. additionalProperties: false, so unknown fields are a 400. */
export const RegisterBody = Type.Object(
  {
    username: Type.String({ pattern: '^[A-Za-z0-9_]{3,32}$' }),
    // Deliberately loose: one @, no spaces, a dot in the domain. Real validation is delivery.
    email: Type.String({ maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$' }),
    password: Type.String({ minLength: 8, maxLength: 256 }),
    displayName: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  },
  { additionalProperties: false },
);

export const LoginBody = Type.Object(
  {
    login: Type.String({ minLength: 1, maxLength: 254 }),
    password: Type.String({ minLength: 1, maxLength: 256 }),
  },
  { additionalProperties: false },
);

export const RefreshBody = Type.Object(
  { refreshToken: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);

/** POST /users/me/password (a Parley addition, docs/api.md). Same bounds as registration. */
export const ChangePasswordBody = Type.Object(
  {
    currentPassword: Type.String({ minLength: 1, maxLength: 256 }),
    newPassword: Type.String({ minLength: 8, maxLength: 256 }),
  },
  { additionalProperties: false },
);
