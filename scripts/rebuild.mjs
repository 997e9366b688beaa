#!/usr/bin/env node
// `npm run rebuild -- <users|messages>`: drops a service's projection rows and replays them from
// the JetStream streams (the source of truth). Stop the service first; the command refuses to run
// while the service's projector is active.
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const rebuilders = { users: 'rebuildUsers', messages: 'rebuildMessages' };
const service = process.argv.slice(2).find((a, i, all) => !a.startsWith('--env-file') && all[i - 1] !== '--env-file');
if (!service || !(service in rebuilders)) {
  console.error(`usage: npm run rebuild -- <${Object.keys(rebuilders).join('|')}>`);
  process.exit(2);
}
// Settings from .env (or --env-file / PARLEY_ENV_FILE) under the environment's own, as the services read them.
const { applyEnvFile } = await import(pathToFileURL(path.join(root, 'packages', 'config', 'dist', 'index.js')).href);
applyEnvFile();
const module = await import(pathToFileURL(path.join(root, 'services', service, 'dist', 'rebuild.js')).href);
const started = Date.now();
try {
  const events = await module[rebuilders[service]](process.env);
  console.log(`rebuilt ${service}: ${events} events replayed in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  process.exit(0);
} catch (error) {
  console.error(`rebuild of ${service} failed: ${error.message}`);
  process.exit(1);
}
