import { applyEnvFile } from '@parley/config';
import { exitOnStartupError, stopOnSignals } from '@parley/runtime';
import { startGatewayService } from './service.js';

Promise.resolve()
  // Settings from .env (or --env-file / PARLEY_ENV_FILE) under the environment's own (operations.md#settings).
  .then(() => applyEnvFile())
  .then(() => startGatewayService(process.env))
  .then((service) => stopOnSignals(service, service.deps.log))
  .catch(exitOnStartupError('gateway'));
