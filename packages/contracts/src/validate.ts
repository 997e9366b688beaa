import type { TSchema, Static } from '@sinclair/typebox';
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler';
import { ChatEvents } from './events/chats.js';
import { UserEvents } from './events/users.js';
import { AttachmentEvents, ChatSnapshot, ReceiptEvents, type AttachmentEvent, type ChatEvent, type ReceiptEvent } from './events/chats.js';
import type { UserEvent } from './events/users.js';
import { AuditEvents, ErasureEvents, ResetEvents, RevocationEvents, type AuditEvent, type ErasureEvent, type ResetEvent, type RevocationEvent } from './events/security.js';

export interface ValidationIssue {
  path: string;
  message: string;
}

/** A compiled validator: compiled once per schema because validation sits on every hot path. */
export interface Validator<T extends TSchema> {
  check(value: unknown): value is Static<T>;
  issues(value: unknown, limit?: number): ValidationIssue[];
}

export function compile<T extends TSchema>(schema: T): Validator<T> {
  const compiled: TypeCheck<T> = TypeCompiler.Compile(schema);
  return {
    check: (value: unknown): value is Static<T> => compiled.Check(value),
    issues: (value, limit = 10) => {
      const out: ValidationIssue[] = [];
      for (const error of compiled.Errors(value)) {
        out.push({ path: error.path || '/', message: error.message });
        if (out.length >= limit) break;
      }
      return out;
    },
  };
}

function catalogue<E extends { type: string; version: number }>(schemas: readonly TSchema[]) {
  const byKey = new Map<string, Validator<TSchema>>();
  for (const schema of schemas) {
    const type = (schema as unknown as { properties: { type: { const: string }; version: { const: number } } }).properties;
    byKey.set(`${type.type.const}@${type.version.const}`, compile(schema));
  }
  /** Parses an event of this context, or returns why it is not one (unknown type/version, bad shape). */
  return (value: unknown): { ok: true; event: E } | { ok: false; reason: string } => {
    if (typeof value !== 'object' || value === null) return { ok: false, reason: 'not an object' };
    const { type, version } = value as { type?: unknown; version?: unknown };
    const validator = byKey.get(`${String(type)}@${String(version)}`);
    if (!validator) return { ok: false, reason: `unknown event ${String(type)} v${String(version)}` };
    if (!validator.check(value)) {
      const first = validator.issues(value, 1)[0];
      return { ok: false, reason: `invalid ${String(type)}: ${first?.path} ${first?.message}` };
    }
    return { ok: true, event: value as E };
  };
}

export const parseChatEvent = catalogue<ChatEvent>(ChatEvents);
export const parseUserEvent = catalogue<UserEvent>(UserEvents);
export const parseAuditEvent = catalogue<AuditEvent>(AuditEvents);
export const parseResetEvent = catalogue<ResetEvent>(ResetEvents);
export const parseRevocationEvent = catalogue<RevocationEvent>(RevocationEvents);
export const parseReceiptEvent = catalogue<ReceiptEvent>(ReceiptEvents);
export const parseAttachmentEvent = catalogue<AttachmentEvent>(AttachmentEvents);
export const parseChatSnapshot = catalogue<ChatSnapshot>([ChatSnapshot]);
export const parseErasureEvent = catalogue<ErasureEvent>(ErasureEvents);
