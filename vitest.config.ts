import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = path.dirname(fileURLToPath(import.meta.url));

// Tests import workspace packages from source, so `npm test` needs no build of them first and
// coverage maps to the .ts files. Production (`npm start`) runs the compiled dist/ instead.
const alias = Object.fromEntries(
  readdirSync(path.join(root, 'packages')).map((name) => [`@parley/${name}`, path.join(root, 'packages', name, 'src', 'index.ts')]),
);

export default defineConfig({
  resolve: { alias },
  test: {
    root,
    include: ['packages/*/src/**/*.test.ts', 'services/*/src/**/*.test.ts', 'services/*/e2e/**/*.test.ts', 'e2e/**/*.test.ts', 'deploy/**/*.test.ts'],
    // The fault suite has its own config and command (vitest.faults.config.ts, `npm run test:faults`).
    exclude: ['**/node_modules/**', 'e2e/faults/**'],
    globalSetup: [path.join(root, 'packages/testing/src/global-setup.ts')],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Files share the machine's two cores and three servers; each has its own database and namespace.
    fileParallelism: true,
    reporters: ['default'],
  },
});
