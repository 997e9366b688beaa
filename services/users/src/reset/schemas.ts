import { Type } from '@sinclair/typebox';

/** Same loose e-mail shape as registration: an address that cannot be registered is never found. */
export const ResetRequestBody = Type.Object(
  { email: Type.String({ maxLength: 254, pattern: '^[^\\s@]+@[^\\s@]+\\.[^\\s@]+$' }) },
  { additionalProperties: false },
);

/** The token's shape is not checked here: a malformed token gets the same answer as an unknown one. */
export const ResetConfirmBody = Type.Object(
  {
    token: Type.String({ minLength: 1, maxLength: 512 }),
    newPassword: Type.String({ minLength: 8, maxLength: 256 }),
  },
  { additionalProperties: false },
);
