import { faultHooks } from '@parley/bus';
import { exitOnStartupError, stopOnSignals } from '@parley/runtime';
import { startUsersService } from './service.js';

// Fault injection for the crash and fault suites (never set in production): see @parley/bus faults.ts.
const projectorHooks = faultHooks(process.env.PARLEY_FAULT);

startUsersService(process.env, { projectorHooks })
  .then((service) => stopOnSignals(service, service.deps.log))
  .catch(exitOnStartupError('users'));
