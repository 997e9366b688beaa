#!/usr/bin/env node
// `npm start`: runs gateway, users and messages in the foreground against the servers in the
// environment. Each service creates what it needs (database, schema, streams) on start. Ctrl-C
// (SIGINT) or SIGTERM is passed to every service, which drains and stops; if one service dies,
// the others are stopped too, so a half-running system never looks healthy.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
// users and messages first: the gateway asks them for memberships as soon as sockets connect.
const services = ['users', 'messages', 'gateway'];
// Tracing's loader hook, loaded before each service (docs/operations.md, Tracing); a no-op unless
// OTEL_EXPORTER_OTLP_ENDPOINT is set. A file URL, so it resolves from any working directory.
const telemetry = pathToFileURL(path.join(root, 'packages', 'telemetry', 'dist', 'register.js')).href;
// `npm start -- --env-file <path>` (or `--env-file=<path>`): every service reads that file instead
// of PARLEY_ENV_FILE or .env (packages/config/src/env-file.ts). Passed on to each of them: Node does
// not load a file named after the script (Node 20 only checks that it exists).
const args = process.argv.slice(2);
const envFileArgs = args.flatMap((arg, i) => (arg === '--env-file' && args[i + 1] !== undefined ? [arg, args[i + 1]] : arg.startsWith('--env-file=') ? [arg] : []));
const children = new Map();
let stopping = false;

for (const name of services) {
  const child = spawn(process.execPath, ['--import', telemetry, path.join(root, 'services', name, 'dist', 'main.js'), ...envFileArgs], {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: process.env,
  });
  children.set(name, child);
  child.on('exit', (code, signal) => {
    children.delete(name);
    if (!stopping) {
      console.error(`parley: ${name} exited (${signal ?? code}); stopping the others`);
      stopAll(code === 0 ? 1 : code ?? 1);
    } else if (children.size === 0) {
      process.exit(process.exitCode ?? 0);
    }
  });
}

function stopAll(exitCode) {
  if (stopping) return;
  stopping = true;
  process.exitCode = exitCode;
  for (const child of children.values()) child.kill('SIGTERM');
  if (children.size === 0) process.exit(exitCode);
  // The services have their own shutdown timeout; this is the last resort.
  setTimeout(() => {
    for (const child of children.values()) child.kill('SIGKILL');
    process.exit(exitCode || 1);
  }, 20_000).unref();
}

// The gateway also serves the web client (clients/web, built above) at /.
console.log(`parley: starting; open http://localhost:${process.env.PORT || 8080} in a browser once the gateway is listening`);

process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
