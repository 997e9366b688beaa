import { publishEvent, type Bus } from '@parley/bus';
import { buildMeta, newId, subjects, type AuditAction, type SecurityEventRecorded } from '@parley/contracts';
import type { Logger } from '@parley/log';

export interface AuditContext {
  ip: string;
  userAgent: string;
  correlationId: string;
}

export interface AuditRecorder {
  record(userId: string | null, action: AuditAction, context: AuditContext, details?: SecurityEventRecorded['data']['details']): Promise<void>;
}

/**
 * Writes security events to the audit stream (projected into users.audit_log). Details must never
 * hold a secret: callers pass ids, counts and reasons only.
 *
 * A failed audit write is logged and does not fail the user's request: refusing logins because the
 * audit stream is briefly unavailable would turn an observability outage into a full outage.
 */
export function auditRecorder(bus: Bus, namespace: string, log: Logger): AuditRecorder {
  return {
    async record(userId, action, context, details = {}) {
      const auditId = newId();
      const event: SecurityEventRecorded = {
        type: 'SecurityEventRecorded',
        version: 1,
        data: { auditId, userId, action, ip: context.ip, userAgent: context.userAgent, details },
        meta: buildMeta({ eventId: auditId, occurredAt: new Date(), actorId: userId, correlationId: context.correlationId }),
      };
      try {
        await publishEvent(bus.js, subjects.audit(namespace, userId), event, { msgId: `audit:${auditId}` });
      } catch (error) {
        log.error({ err: (error as Error).message, action, userId }, 'audit event not recorded');
      }
    },
  };
}

/** The audit context of an API request. */
export function auditContext(request: { ip: string; userAgent: string; requestId: string }): AuditContext {
  return { ip: request.ip, userAgent: request.userAgent, correlationId: request.requestId };
}
