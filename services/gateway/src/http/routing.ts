import { EXPORT_GATEWAY_TIMEOUT_MS, type ServiceName } from '@parley/contracts';

/**
 * Which service owns which part of the API. The gateway only needs the owner; the service routes
 * the exact path itself (so adding an endpoint never touches the gateway).
 */
const OWNERS: [prefix: string, service: ServiceName][] = [
  ['/api/v1/auth', 'users'],
  ['/api/v1/users', 'users'],
  ['/api/v1/contacts', 'users'],
  ['/api/v1/chats', 'messages'],
  ['/api/v1/messages', 'messages'],
  ['/api/v1/polls', 'messages'],
  ['/api/v1/attachments', 'messages'],
  ['/api/v1/search', 'messages'],
];

/** Routes that work without an access token (api.md: register, login, refresh, password reset). */
const PUBLIC = new Set([
  'POST /api/v1/auth/register',
  'POST /api/v1/auth/login',
  'POST /api/v1/auth/refresh',
  'POST /api/v1/auth/password-reset/request',
  'POST /api/v1/auth/password-reset/confirm',
  'POST /api/v1/auth/verify-email',
]);

export function ownerOf(path: string): ServiceName | null {
  for (const [prefix, service] of OWNERS) {
    if (path === prefix || path.startsWith(`${prefix}/`)) return service;
  }
  return null;
}

export function isPublic(method: string, path: string): boolean {
  return PUBLIC.has(`${method} ${path.replace(/\/$/, '')}`);
}

/**
 * Routes whose owner itself waits on another service for longer than SERVICE_TIMEOUT_MS (5 s by
 * default): the data export, where users waits up to 30 s for messages.export. Forwarded with
 * SERVICE_TIMEOUT_MS, an export slower than 5 s was a 503 although api.md promises 30 s.
 */
const SLOW_ROUTES = new Map([['GET /api/v1/users/me/export', EXPORT_GATEWAY_TIMEOUT_MS]]);

/** How long the gateway waits for the answer (and each of its parts) to `method path`: never less than `serviceTimeoutMs`. */
export function timeoutOf(method: string, path: string, serviceTimeoutMs: number): number {
  return Math.max(serviceTimeoutMs, SLOW_ROUTES.get(`${method} ${path.replace(/\/$/, '')}`) ?? 0);
}
