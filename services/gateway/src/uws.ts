import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import type * as UWS from 'uWebSockets.js';

/**
 * uWebSockets.js, native or not at all. The package, when its binary does not load (a Node
 * version it has no build for), silently falls back to a JavaScript implementation on an old
 * `ws`, without the request and idle timeouts docs/security.md relies on (slowloris, trickled
 * bodies). So the gateway loads the binary itself and refuses to start without it.
 */
export class NativeBindingError extends Error {
  override name = 'NativeBindingError';
}

/** Node's module ABI versions of the binaries this package ships, and the Node majors they are. */
const NODE_OF_ABI: Record<string, string> = { '83': '14', '93': '16', '108': '18', '115': '20', '127': '22', '137': '24' };

/** `target` is this process's platform and Node ABI; a test names another to see the refusal. */
export function loadNativeUws(target = { platform: process.platform, arch: process.arch, modules: process.versions.modules, version: process.version }, env = process.env): typeof UWS {
  const require = createRequire(import.meta.url);
  const dir = path.join(path.dirname(require.resolve('uWebSockets.js/package.json')), 'binaries');
  const name = `uws_${target.platform}_${target.arch}_${target.modules}.node`;
  if (env.UWS_USE_FALLBACK) {
    throw new NativeBindingError('UWS_USE_FALLBACK is set: the gateway runs only on the native uWebSockets.js build (its JavaScript fallback lacks the timeouts the gateway relies on); unset it');
  }
  try {
    return require(path.join(dir, name)) as typeof UWS;
  } catch (error) {
    const abis = new Set(
      readdirSync(dir)
        .map((f) => new RegExp(`^uws_${target.platform}_${target.arch}_(\\d+)\\.node$`).exec(f)?.[1])
        .filter((abi): abi is string => abi !== undefined),
    );
    const supported = [...abis].map((abi) => (NODE_OF_ABI[abi] ? `Node ${NODE_OF_ABI[abi]}` : `module ABI ${abi}`)).join(', ') || 'none';
    throw new NativeBindingError(
      `uWebSockets.js has no native build for Node ${target.version} on ${target.platform}-${target.arch} (${name}: ${(error as Error).message.split('\n')[0]}). ` +
        `Builds shipped for this platform: ${supported}. Run the gateway on one of those; it does not run on the JavaScript fallback.`,
    );
  }
}
