#!/usr/bin/env node
// `npm run secrets -- --out <dir> [--namespace <ns>] [--ledger-from <ns>] [--owner <uid>[:<gid>]] [--force]`: makes every secret one Parley
// installation needs (docs/security.md, "Secrets and their rotation"):
//   <dir>/nkeys/<principal>.nk   a NATS user seed per process (gateway, users, messages, retention, backup)
//   <dir>/nats-auth.conf         the NATS server's `authorization` block: public keys and permissions only
//   <dir>/parley.env             JWT_SECRET, GATEWAY_SIGNING_KEY, GATEWAY_PUBLIC_KEY, GRAFANA_ADMIN_PASSWORD, POSTGRES_PASSWORD, REDIS_PASSWORD, CACHE_KEY
// It refuses to overwrite an existing folder's secrets unless --force (rotation is deliberate).
// Run with sudo (for --owner), the folder (when this run creates it), parley.env and nats-auth.conf go to the user who ran sudo
// (SUDO_UID/SUDO_GID), modes kept (0700, 0600): `docker compose --env-file <dir>/parley.env` is run
// by that user, not root. The seeds under nkeys/ go to --owner.
import { chownSync, existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { NAMESPACE_PATTERN, PRINCIPALS } from '@parley/contracts';
import { generateSecrets, SECRET_FILES, writeSecrets } from '@parley/secrets';

const { values } = parseArgs({
  options: {
    out: { type: 'string' },
    namespace: { type: 'string', default: process.env.PARLEY_NAMESPACE || 'parley' },
    // Restoring a backup taken in another namespace on the same NATS: the backup job may import its erasure ledger.
    'ledger-from': { type: 'string', multiple: true, default: [] },
    force: { type: 'boolean', default: false },
    // The user the seed files belong to: the image runs as uid 1000, and compose mounts the files as they are.
    owner: { type: 'string' },
  },
  strict: true,
});
if (!values.out) {
  console.error('usage: npm run secrets -- --out <dir> [--namespace <ns>] [--ledger-from <ns>] [--owner <uid>[:<gid>]] [--force]');
  process.exit(2);
}
if (!NAMESPACE_PATTERN.test(values.namespace)) {
  console.error(`--namespace "${values.namespace}" is not a valid PARLEY_NAMESPACE`);
  process.exit(2);
}
const dir = path.resolve(values.out);
// Whether this run makes the folder: only then is it ours to give to the sudo caller (below).
const dirExisted = existsSync(dir);
if (existsSync(path.join(dir, SECRET_FILES.env)) && !values.force) {
  console.error(`${dir} already holds secrets; pass --force to replace them all (see "rotation" in docs/security.md)`);
  process.exit(1);
}
writeSecrets(dir, generateSecrets(values.namespace, { ledgersOf: values['ledger-from'] }));
if (values.owner) {
  const [uid, gid = uid] = values.owner.split(':').map(Number);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) {
    console.error(`--owner "${values.owner}" is not <uid>[:<gid>]`);
    process.exit(2);
  }
  const nkeys = path.join(dir, SECRET_FILES.nkeyDir);
  chownSync(nkeys, uid, gid);
  for (const file of readdirSync(nkeys)) chownSync(path.join(nkeys, file), uid, gid);
}
// Under sudo everything else would stay root's: root 0700 and 0600, which the operator running
// compose cannot read (`--env-file secrets/parley.env` fails with permission denied).
const sudoUid = Number(process.env.SUDO_UID);
const sudoGid = Number(process.env.SUDO_GID);
if (process.getuid?.() === 0 && process.env.SUDO_UID && Number.isInteger(sudoUid) && Number.isInteger(sudoGid) && process.env.SUDO_GID) {
  // A folder that existed (say /etc/parley, beside root's other files) keeps its owner: given to
  // the caller, they could replace what else root keeps there.
  if (!dirExisted) chownSync(dir, sudoUid, sudoGid);
  for (const file of [SECRET_FILES.env, SECRET_FILES.natsAuthorization]) chownSync(path.join(dir, file), sudoUid, sudoGid);
  // Without --owner the seeds are the caller's too, as they would be without sudo.
  if (!values.owner) {
    const nkeys = path.join(dir, SECRET_FILES.nkeyDir);
    chownSync(nkeys, sudoUid, sudoGid);
    for (const file of readdirSync(nkeys)) chownSync(path.join(nkeys, file), sudoUid, sudoGid);
  }
}
console.log(`secrets for namespace "${values.namespace}" written to ${dir}:`);
console.log(`  ${SECRET_FILES.natsAuthorization}   include it in the NATS server configuration`);
console.log(`  ${SECRET_FILES.nkeyDir}/{${PRINCIPALS.join(',')}}.nk   each process's NATS_NKEY_FILE (or NATS_NKEY_DIR=${path.join(dir, SECRET_FILES.nkeyDir)})`);
console.log(`  ${SECRET_FILES.env}   JWT_SECRET, GATEWAY_SIGNING_KEY, GATEWAY_PUBLIC_KEY, GRAFANA_ADMIN_PASSWORD, POSTGRES_PASSWORD, REDIS_PASSWORD, CACHE_KEY`);
