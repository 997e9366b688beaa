import { DEV_GATEWAY_SIGNING_KEY, DEV_JWT_SECRET } from '@parley/config';

/**
 * Where the client port listens: every interface, except while a published development key signs
 * or checks tokens (a local run with JWT_SECRET or GATEWAY_SIGNING_KEY unset, @parley/config's
 * isClearlyLocal): then loopback only. "Local" looks at the servers the process uses, not at who
 * reaches it, so a host install that forgot NODE_ENV=production and its secrets would otherwise
 * accept tokens anyone can forge on a public port. `npm start` on a fresh clone still answers on
 * localhost:8080.
 */
export function listenHost(config: { JWT_SECRET: string; GATEWAY_SIGNING_KEY: string }): '0.0.0.0' | '127.0.0.1' {
  return config.JWT_SECRET === DEV_JWT_SECRET || config.GATEWAY_SIGNING_KEY === DEV_GATEWAY_SIGNING_KEY ? '127.0.0.1' : '0.0.0.0';
}
