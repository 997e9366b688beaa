import { faultHooks } from '@parley/bus';
import { applyEnvFile } from '@parley/config';
import { exitOnStartupError, stopOnSignals } from '@parley/runtime';
import { startMessagesService } from './service.js';

// Fault injection for the crash and fault suites (never set in production): see @parley/bus faults.ts.
const projectorHooks = faultHooks(process.env.PARLEY_FAULT);

Promise.resolve()
  // Settings from .env (or --env-file / PARLEY_ENV_FILE) under the environment's own (operations.md#settings).
  .then(() => applyEnvFile())
  .then(() => startMessagesService(process.env, { projectorHooks }))
  .then((service) => stopOnSignals(service, service.deps.log))
  .catch(exitOnStartupError('messages'));
