import { fileURLToPath } from 'node:url';
import { TokenSigner } from '@parley/auth';
import { Projector, serveRequests } from '@parley/bus';
import { parseUserEvent, streamName, subjects, type UserEvent } from '@parley/contracts';
import { ApiRouter } from '@parley/http';
import type { Deps, Started } from '@parley/runtime';
import { authRoutes } from './auth/routes.js';
import type { UsersConfig } from './env.js';
import { usersRpc } from './rpc.js';
import { CHECKPOINT_TABLE, usersProjection } from './users/projection.js';
import { userRoutes } from './users/routes.js';

export const SCHEMA = 'users';
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export interface UsersApp {
  router: ApiRouter;
  projector: Projector<UserEvent>;
}

/** Builds the users service from ready clients; reads no env, listens on nothing. */
export function buildApp(deps: Deps, config: UsersConfig, options: { projectorHooks?: { afterCommit?: (seqs: number[]) => void } } = {}): UsersApp {
  const router = new ApiRouter(deps.log);
  const signer = new TokenSigner(config.JWT_SECRET, config.ACCESS_TOKEN_TTL);
  authRoutes(router, { ...deps, signer, refreshTtlSeconds: config.REFRESH_TOKEN_TTL });
  userRoutes(router, { pool: deps.pool, cache: deps.cache, userTtlSeconds: config.REDIS_USER_TTL });

  const projector = new Projector<UserEvent>({
    bus: deps.bus,
    stream: streamName(deps.namespace, 'users'),
    filterSubject: subjects.allUsers(deps.namespace),
    pool: deps.pool,
    databaseUrl: deps.databaseUrl,
    checkpointTable: CHECKPOINT_TABLE,
    parse: parseUserEvent,
    projection: usersProjection(deps),
    log: deps.log,
    metrics: deps.metrics,
    ackWaitMs: config.PROJECTOR_ACK_WAIT_MS,
    ...(options.projectorHooks ? { hooks: options.projectorHooks } : {}),
  });
  return { router, projector };
}

/** Wires the app onto NATS: API requests, internal RPC, the projector. */
export async function startApp(deps: Deps, app: UsersApp): Promise<Started> {
  const { nc } = deps.bus;
  const rpc = usersRpc(deps.pool);
  const subs = [
    serveRequests(nc, subjects.api(deps.namespace, 'users'), 'users', (req) => app.router.handle(req as never), deps.log, deps.metrics),
    serveRequests(nc, subjects.rpc(deps.namespace, 'users', 'existing'), 'users', (req) => rpc.existing(req as never), deps.log, deps.metrics),
  ];
  const { rows } = await deps.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM users.users');
  deps.metrics.usersTotal.set(rows[0]?.n ?? 0);
  app.projector.start();
  return {
    async stop() {
      // Stop taking requests first, let in-flight ones finish (drain), then stop projecting.
      await Promise.all(subs.map((s) => s.drain()));
      await app.projector.stop();
    },
  };
}
