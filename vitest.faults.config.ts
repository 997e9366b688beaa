import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

const root = path.dirname(fileURLToPath(import.meta.url));
const alias = Object.fromEntries(
  readdirSync(path.join(root, 'packages')).map((name) => [`@parley/${name}`, path.join(root, 'packages', name, 'src', 'index.ts')]),
);

// The fault suite (`npm run test:faults`, docs/reliability.md). Each file starts its own servers and
// service processes and kills them; two files at a time keep a 2-core machine from timing out
// everything else while one scenario holds an outage open.
export default defineConfig({
  resolve: { alias },
  test: {
    root,
    include: ['e2e/faults/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    minWorkers: 1,
    testTimeout: 240_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
