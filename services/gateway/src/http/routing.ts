import type { ServiceName } from '@parley/contracts';

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
