import { fileURLToPath } from 'node:url';
import { TokenSigner } from '@parley/auth';
import { RequestVerifier, serveRequests, serveRpc, type ProjectorHooks } from '@parley/bus';
import { Projector } from '@parley/projector-pg';
import { parseAuditEvent, parseResetEvent, parseUserEvent, streamName, subjects, type AuditEvent, type ResetEvent, type UserEvent } from '@parley/contracts';
import { ApiRouter } from '@parley/http';
import { isTransientPgError } from '@parley/pg';
import { projectorBase, type Deps, type Started } from '@parley/runtime-pg';
import { auditProjection } from './audit/projection.js';
import { auditRecorder } from './audit/record.js';
import { auditRoutes } from './audit/routes.js';
import { erasureRoutes } from './erasure/routes.js';
import { passwordRoutes } from './auth/password-routes.js';
import { authRoutes } from './auth/routes.js';
import { AttemptThrottle, LoginThrottle, REAUTH_PREFIX, sweepExpiredCounters } from './auth/throttle.js';
import { privacyRoutes } from './privacy/routes.js';
import { sendVerification, verifyRoutes, type VerifyDeps } from './verify/email.js';
import { refreshChainKey } from './auth/refresh-tokens.js';
import { BackgroundTasks } from './background.js';
import type { UsersConfig } from './env.js';
import { createMailer } from './mail/mailer.js';
import { resetsProjection } from './reset/projection.js';
import { resetRoutes } from './reset/routes.js';
import { usersRpc } from './rpc.js';
import { CHECKPOINT_TABLE, usersProjection } from './users/projection.js';
import { userRoutes } from './users/routes.js';
import { SearchLimiter } from './users/search-limit.js';
import { contactRoutes } from './contacts/routes.js';
import { exportRoutes } from './export/routes.js';

export const SCHEMA = 'users';
export const MIGRATIONS_DIR = fileURLToPath(new URL('../migrations', import.meta.url));

export interface AppOptions {
  projectorHooks?: ProjectorHooks | undefined;
}

export interface UsersApp {
  router: ApiRouter;
  /** The users projection (accounts, profiles, contacts). */
  projector: Projector<UserEvent>;
  /** Every projector this service runs (the users projection first). */
  projectors: Projector<{ meta?: { eventId?: string } }>[];
  /** Work requests started without waiting for it (reset mails); shutdown waits for it. */
  background: BackgroundTasks;
  /** Checks the gateway's signature on requests made for users (GATEWAY_PUBLIC_KEY). */
  verifier: RequestVerifier;
  /** Attempt counters of logins and re-authentication; an erasure forgets the account's. */
  throttle: LoginThrottle;
  /** Deletes the attempt counters whose window ended (every replica, every 10 minutes). */
  sweepCounters(): Promise<number>;
}

/** Builds the users service from ready clients; reads no env, listens on nothing. */
export function buildApp(deps: Deps, config: UsersConfig, options: AppOptions = {}): UsersApp {
  const router = new ApiRouter(deps.log, isTransientPgError);
  const signer = new TokenSigner(config.JWT_SECRET, config.ACCESS_TOKEN_TTL);
  const audit = auditRecorder(deps.bus, deps.namespace, deps.log);
  const loginLimits = {
    maxFailuresPerAccountAddress: config.LOGIN_MAX_FAILURES_PER_ACCOUNT,
    maxFailuresPerAddress: config.LOGIN_MAX_FAILURES_PER_ADDRESS,
    slowdownAfter: config.LOGIN_SLOWDOWN_AFTER_FAILURES,
    maxDelaySeconds: config.LOGIN_MAX_DELAY_SECONDS,
    windowSeconds: config.LOGIN_FAILURE_WINDOW_SECONDS,
  };
  const throttle = new LoginThrottle(deps.pool, loginLimits);
  const reauthThrottle = new LoginThrottle(deps.pool, loginLimits, REAUTH_PREFIX);
  const mailer = createMailer(config);
  const background = new BackgroundTasks(deps.log);
  const verify: VerifyDeps = {
    ...deps,
    audit,
    mailer,
    background,
    secret: config.JWT_SECRET,
    publicUrl: config.PUBLIC_URL,
    ttlSeconds: config.VERIFY_EMAIL_TTL,
    requestThrottle: new AttemptThrottle(deps.pool, config.RESET_REQUEST_WINDOW_SECONDS),
    maxRequests: config.VERIFY_EMAIL_MAX_REQUESTS,
  };
  authRoutes(router, {
    ...deps,
    signer,
    refreshTtlSeconds: config.REFRESH_TOKEN_TTL,
    refreshChainKey: refreshChainKey(config.JWT_SECRET),
    // As failed logins from one client (LOGIN_MAX_FAILURES_PER_ADDRESS a LOGIN_FAILURE_WINDOW_SECONDS).
    refreshThrottle: new AttemptThrottle(deps.pool, config.LOGIN_FAILURE_WINDOW_SECONDS),
    refreshMaxFailures: config.LOGIN_MAX_FAILURES_PER_ADDRESS,
    audit,
    throttle,
    registerThrottle: new AttemptThrottle(deps.pool, config.REGISTER_WINDOW_SECONDS),
    registerMaxPerAddress: config.REGISTER_MAX_PER_ADDRESS,
    sendVerification: (user) => sendVerification(verify, user),
  });
  verifyRoutes(router, verify);
  const profileDeps = { ...deps, userTtlSeconds: config.REDIS_USER_TTL };
  userRoutes(router, { ...profileDeps, searchLimiter: new SearchLimiter(config.USER_SEARCH_RATE, config.USER_SEARCH_WINDOW_SECONDS) });
  contactRoutes(router, { ...profileDeps, contactsTtlSeconds: config.REDIS_CONTACTS_TTL });
  privacyRoutes(router, profileDeps);
  exportRoutes(router, profileDeps);
  auditRoutes(router, deps);
  passwordRoutes(router, { ...deps, audit, reauthThrottle });
  erasureRoutes(router, { ...deps, audit, throttle, reauthThrottle, mailer });
  resetRoutes(router, {
    ...deps,
    audit,
    throttle,
    // Every request counts (a mail each), in the same table as failed logins, under its own keys.
    requestThrottle: new AttemptThrottle(deps.pool, config.RESET_REQUEST_WINDOW_SECONDS),
    requestLimits: { perAccount: config.RESET_MAX_REQUESTS_PER_ACCOUNT, perAddress: config.RESET_MAX_REQUESTS_PER_ADDRESS },
    background,
    mailer,
    tokenTtlSeconds: config.RESET_TOKEN_TTL,
    publicUrl: config.PUBLIC_URL,
  });

  const common = projectorBase(deps, { checkpointTable: CHECKPOINT_TABLE, ackWaitMs: config.PROJECTOR_ACK_WAIT_MS, lingerMs: config.PROJECTOR_LINGER_MS, synchronousCommit: config.PROJECTOR_SYNCHRONOUS_COMMIT === 'on', hooks: options.projectorHooks });
  const projector = new Projector<UserEvent>({
    ...common,
    stream: streamName(deps.namespace, 'users'),
    filterSubject: subjects.allUsers(deps.namespace),
    parse: parseUserEvent,
    projection: usersProjection(deps),
  });
  const auditProjector = new Projector<AuditEvent>({
    ...common,
    stream: streamName(deps.namespace, 'audit'),
    filterSubject: subjects.allAudit(deps.namespace),
    parse: parseAuditEvent,
    projection: auditProjection(),
  });
  const resetsProjector = new Projector<ResetEvent>({
    ...common,
    stream: streamName(deps.namespace, 'resets'),
    filterSubject: subjects.allResets(deps.namespace),
    parse: parseResetEvent,
    projection: resetsProjection(),
  });
  return {
    router,
    projector,
    projectors: [projector, auditProjector, resetsProjector] as UsersApp['projectors'],
    background,
    verifier: new RequestVerifier(config.GATEWAY_PUBLIC_KEY),
    throttle,
    sweepCounters: () => sweepExpiredCounters(deps.pool, Math.max(config.LOGIN_FAILURE_WINDOW_SECONDS, config.RESET_REQUEST_WINDOW_SECONDS, config.REGISTER_WINDOW_SECONDS)),
  };
}

/** How often each replica deletes the throttles' counters that ended (idempotent; any replica may). */
const SWEEP_COUNTERS_EVERY_MS = 10 * 60_000;

/** Wires the app onto NATS: API requests, internal RPC, the projectors. */
export async function startApp(deps: Deps, app: UsersApp): Promise<Started> {
  const { nc } = deps.bus;
  const rpc = usersRpc(deps.pool, { ...deps, throttle: app.throttle });
  const subs = [
    serveRequests(nc, subjects.api(deps.namespace, 'users'), 'users', (req, context) => app.router.handle(req as never, context), deps.log, deps.metrics, app.verifier, subjects.parts(deps.namespace, 'users')),
    ...serveRpc(nc, deps.namespace, 'users', rpc, deps.log, deps.metrics, app.verifier),
  ];
  const { rows } = await deps.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM users.users');
  deps.metrics.usersTotal.set(rows[0]?.n ?? 0);
  for (const projector of app.projectors) projector.start();
  const sweep = () => void app.sweepCounters().catch((error: unknown) => deps.log.warn({ err: (error as Error).message }, 'expired throttle counters not swept'));
  sweep();
  const sweeping = setInterval(sweep, SWEEP_COUNTERS_EVERY_MS);
  sweeping.unref();
  return {
    async stop() {
      clearInterval(sweeping);
      // Stop taking requests first, let in-flight ones finish (drain), then stop projecting.
      await Promise.all(subs.map((s) => s.drain()));
      // Before the projectors: a reset request in flight waits for the resets projection.
      await app.background.idle();
      await Promise.all(app.projectors.map((p) => p.stop()));
    },
  };
}
