import { exitOnStartupError, stopOnSignals } from '@parley/runtime';
import { startMessagesService } from './service.js';

// Fault injection for the crash tests (never set in production): die between commit and ack.
const fault = process.env.PARLEY_FAULT === 'projector-crash-after-commit';

startMessagesService(process.env, fault ? { projectorHooks: { afterCommit: () => process.kill(process.pid, 'SIGKILL') } } : {})
  .then((service) => stopOnSignals(service, service.deps.log))
  .catch(exitOnStartupError('messages'));
