import { RequestSigner } from '@parley/bus';
import { runService, type Deps, type RunningService } from '@parley/runtime';
import { startGateway, type Gateway } from './app.js';
import { loadGatewayEnv } from './env.js';

/** Starts the gateway against the servers named in `source` (main.ts passes process.env; tests their own). */
export async function startGatewayService(source: Record<string, string | undefined>): Promise<RunningService<Deps> & { port: number }> {
  const config = loadGatewayEnv(source);
  let gateway: Gateway | undefined;
  const running = await runService({
    name: 'gateway',
    env: config,
    start: async (deps) => {
      // Requests the gateway makes for users carry its signature (packages/bus/src/assertion.ts).
      deps.bus.signer = new RequestSigner(config.GATEWAY_SIGNING_KEY);
      gateway = await startGateway(deps, config);
      return gateway;
    },
  });
  return { ...running, port: gateway!.port };
}
