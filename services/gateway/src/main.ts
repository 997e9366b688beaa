import { exitOnStartupError, stopOnSignals } from '@parley/runtime';
import { startGatewayService } from './service.js';

startGatewayService(process.env)
  .then((service) => stopOnSignals(service, service.deps.log))
  .catch(exitOnStartupError('gateway'));
