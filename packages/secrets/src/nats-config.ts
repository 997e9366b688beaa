import { createUser, fromSeed } from '@nats-io/nkeys';
import { busPermissions, PRINCIPALS, type BusPermissions, type Principal } from '@parley/contracts';

/** One NATS user: its public nkey (the server keeps only this) and what it may do. */
export interface BusUser {
  /** Who this is (a comment in the configuration). */
  name: string;
  nkey: string;
  permissions: BusPermissions | 'all';
}

/** A fresh user nkey: the seed (secret, the process's credential) and its public key. */
export function createUserKey(): { seed: string; publicKey: string } {
  const pair = createUser();
  return { seed: new TextDecoder().decode(pair.getSeed()), publicKey: pair.getPublicKey() };
}

/** The public key of a user seed (to check that a seed file and a server config belong together). */
export function publicKeyOfSeed(seed: string): string {
  return fromSeed(new TextEncoder().encode(seed.trim())).getPublicKey();
}

/** The NATS users of namespace `ns`, one per principal, with busPermissions' lists. */
export function principalUsers(ns: string, publicKeys: Record<Principal, string>, options: { ledgersOf?: string[] } = {}): BusUser[] {
  const permissions = busPermissions(ns, options);
  return PRINCIPALS.map((p) => ({ name: `${p} (namespace ${ns})`, nkey: publicKeys[p], permissions: permissions[p] }));
}

/**
 * The `authorization` block of a NATS server configuration (nats-server's config syntax accepts
 * JSON values). Include it from the server's main file: `include ./parley-auth.conf`.
 * `'all'` is for test harnesses only (a user that may do anything, to inspect and clean up).
 */
export function renderAuthorization(users: BusUser[], comment: string): string {
  const list = (items: string[]) => `[\n${items.map((i) => `            ${JSON.stringify(i)}`).join(',\n')}\n          ]`;
  const entry = (u: BusUser) => {
    if (u.permissions === 'all') return `    # ${u.name}: unrestricted\n    { nkey: ${JSON.stringify(u.nkey)} }`;
    const p = u.permissions;
    return [
      `    # ${u.name}`,
      `    {`,
      `      nkey: ${JSON.stringify(u.nkey)}`,
      `      permissions: {`,
      `        publish: { allow: ${list(p.publish)} }`,
      // An empty allow list would mean "no restriction" to nats-server: deny everything instead.
      p.subscribe.length > 0 ? `        subscribe: { allow: ${list(p.subscribe)} }` : `        subscribe: { deny: [">"] }`,
      ...(p.allowResponses ? ['        allow_responses: true'] : []),
      `      }`,
      `    }`,
    ].join('\n');
  };
  return [`# ${comment}`, 'authorization {', '  users = [', users.map(entry).join('\n'), '  ]', '}', ''].join('\n');
}
